"""A staff agent outside the "EU only" group finds no EU ticket, job, export or dashboard row
anywhere — pages, searches, choices, filters, actions, jobs and JSON (tickets/access.py)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.core.files.storage import default_storage
from django.urls import reverse

from tests.access_world import make_user, make_world
from tickets import bulk
from tickets.models import BulkJob, Ticket

pytestmark = pytest.mark.django_db

EU_WORDS = ("EU outage", "Kapture EU", "EU attempt error", "eu.customer@example.com")


def assert_no_eu(response) -> None:
    assert response.status_code == 200, response.status_code
    page = response.content.decode()
    for words in EU_WORDS:
        assert words not in page, f"{words!r} shown on {response.request['PATH_INFO']}"


@pytest.fixture
def world(account_factory):
    return make_world(account_factory)


def test_no_eu_ticket_account_attempt_or_job_on_any_list_search_or_form(world):
    staff = world.client("staff_outside")
    for url in (
        reverse("admin:tickets_ticket_changelist"),
        reverse("admin:tickets_ticket_changelist") + "?q=EU",
        reverse("admin:tickets_ticket_changelist") + f"?q={world.eu_ticket.reference}",
        reverse("admin:tickets_ticket_changelist") + f"?account__id__exact={world.eu_account.pk}",
        reverse("admin:tickets_ticket_add"),
        reverse("admin:tickets_ticket_add") + f"?account={world.eu_account.pk}",
        reverse("admin:tickets_syncattempt_changelist"),
        reverse("admin:tickets_bulkjob_changelist"),
        reverse("sync_dashboard"),
        reverse("tickets:list"),
        reverse("tickets:list") + "?q=EU",
        reverse("tickets:create"),
    ):
        assert_no_eu(staff.get(url))
    states = staff.get(reverse("tickets:sync_states"), {"id": [world.eu_ticket.pk, world.open_ticket.pk]})
    assert [row["id"] for row in states.json()["tickets"]] == [world.open_ticket.pk]
    # The open account's ticket is there: the pages are not simply empty.
    assert "Open printer jam" in staff.get(reverse("admin:tickets_ticket_changelist")).content.decode()


def test_members_of_the_group_see_the_eu_rows(world):
    agent = world.users["agent"]
    agent.is_staff = True
    agent.save()
    member = world.client("agent")
    assert "EU outage" in member.get(reverse("admin:tickets_ticket_changelist")).content.decode()
    assert "Kapture EU" in member.get(reverse("sync_dashboard")).content.decode()
    assert "Kapture EU" in member.get(reverse("admin:tickets_syncattempt_changelist")).content.decode()


def test_a_ticket_cannot_be_added_to_an_account_outside_ones_groups(world):
    staff = world.client("staff_outside")
    data = {
        "account": world.eu_account.pk,
        "title": "Sneaky",
        "requester_email": "x@example.com",
        "priority": "medium",
        "status": "new",
        "tags": "[]",
        "extra": "{}",
    }
    admin_answer = staff.post(reverse("admin:tickets_ticket_add"), data)
    assert admin_answer.status_code == 200
    assert "Select a valid choice" in admin_answer.content.decode()
    ui_answer = staff.post(reverse("tickets:create"), data)
    assert ui_answer.status_code == 200
    assert "Select a valid choice" in ui_answer.content.decode()
    assert not Ticket.objects.filter(title="Sneaky").exists()


def test_a_forged_selection_in_a_bulk_action_leaves_the_eu_ticket_alone(world):
    staff = world.client("staff_outside")
    answer = staff.post(
        reverse("admin:tickets_ticket_changelist"),
        {
            "action": "change_priority",
            "new_priority": "urgent",
            "_selected_action": [world.eu_ticket.pk, world.open_ticket.pk],
        },
    )
    assert answer.status_code == 302
    job = BulkJob.objects.filter(created_by=world.users["staff_outside"]).get()
    assert job.total == 1  # only the ticket the user may see was recorded
    bulk.run_job(job.pk)
    world.eu_ticket.refresh_from_db()
    world.open_ticket.refresh_from_db()
    assert (world.eu_ticket.priority, world.open_ticket.priority) == ("medium", "urgent")


def test_a_job_only_touches_what_its_starter_may_see_when_it_runs(world):
    """Ids recorded while the starter was in the group are skipped once they are not."""
    starter = world.users["agent"]
    job = BulkJob.objects.create(
        action="export_csv", selection={"ids": [world.eu_ticket.pk]}, total=1, created_by=starter
    )
    starter.groups.clear()
    bulk.run_job(job.pk)
    job.refresh_from_db()
    assert (job.succeeded, job.skipped) == (0, 1)
    assert bulk.NOT_AVAILABLE in job.results["skipped"]
    with default_storage.open(job.results["file"]) as export:
        assert "EU outage" not in export.read().decode()


def test_select_all_exports_only_what_the_starter_sees(world):
    staff = world.client("staff_outside")
    staff.post(
        reverse("admin:tickets_ticket_changelist"),
        {
            "action": "export_csv",
            "select_across": "1",
            "_selected_action": [world.open_ticket.pk],
        },
    )
    job = BulkJob.objects.get(created_by=world.users["staff_outside"])
    bulk.run_job(job.pk)
    download = staff.get(reverse("admin:tickets_ticket_bulk_job_download", args=[job.pk]))
    content = b"".join(download.streaming_content).decode()
    assert "Open printer jam" in content and "EU outage" not in content


def test_jobs_and_exports_belong_to_their_starter_unless_allowed_to_see_all(world):
    other = make_user("other-staff", staff=True, permissions=("view_ticket", "change_ticket"))
    job = BulkJob.objects.create(
        action="export_csv",
        selection={"ids": [world.open_ticket.pk]},
        total=1,
        created_by=world.users["staff_outside"],
    )
    bulk.run_job(job.pk)
    download = reverse("admin:tickets_ticket_bulk_job_download", args=[job.pk])
    assert world.client("staff_outside").get(download).status_code == 200

    from django.test import Client

    client = Client()
    client.force_login(other)
    assert client.get(download).status_code == 404
    assert client.get(reverse("admin:tickets_ticket_bulk_job", args=[job.pk])).status_code == 404
    assert f"#{job.pk}" not in client.get(reverse("admin:tickets_bulkjob_changelist")).content.decode()

    other.user_permissions.add(Permission.objects.get(codename="view_all_bulk_jobs"))
    other = type(other).objects.get(pk=other.pk)  # permissions are cached on the instance
    client.force_login(other)
    assert client.get(download).status_code == 200
    assert f"#{job.pk}" in client.get(reverse("admin:tickets_bulkjob_changelist")).content.decode()
