"""Tickets in the admin: created and edited through the services layer."""

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tickets.models import SyncAttempt, SyncState, Ticket


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


def ticket_form(account, **overrides) -> dict:
    data = {
        "account": account.pk,
        "title": "Printer on fire",
        "description": "3rd floor",
        "requester_email": "tim@acme.com",
        "requester_name": "Tim",
        "priority": "high",
        "impact": "",
        "status": "new",
        "due_at_0": "",
        "due_at_1": "",
        "tags": "[]",
        "extra": "{}",
        "attempts_log-TOTAL_FORMS": "0",
        "attempts_log-INITIAL_FORMS": "0",
        "attempts_log-MIN_NUM_FORMS": "0",
        "attempts_log-MAX_NUM_FORMS": "0",
    }
    return {**data, **overrides}


@pytest.mark.django_db
def test_adding_a_ticket_in_the_admin_queues_it_for_sync(admin_client, account_factory):
    account = account_factory("kapture")
    response = admin_client.post(reverse("admin:tickets_ticket_add"), ticket_form(account))
    assert response.status_code == 302, response.content.decode()[:3000]
    ticket = Ticket.objects.get()
    assert ticket.reference == f"TC-{ticket.pk:06d}"
    assert (ticket.sync_state, ticket.revision) == (SyncState.PENDING, 1)
    assert ticket.created_by.username == "root"
    listing = admin_client.get(reverse("admin:tickets_ticket_changelist")).content.decode()
    assert ticket.reference in listing and "Pending" in listing


@pytest.mark.django_db
def test_bad_provider_fields_are_refused_before_saving(admin_client, account_factory):
    account = account_factory("kapture")
    form = ticket_form(account, extra__callback_time="tomorrow")
    response = admin_client.post(reverse("admin:tickets_ticket_add"), form)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "yyyy-MM-dd hh:mm:ss" in str(errors["extra__callback_time"])  # on the field itself
    assert not Ticket.objects.exists()


@pytest.mark.django_db
def test_tickets_cannot_be_bulk_deleted(admin_client, account_factory):
    page = admin_client.get(reverse("admin:tickets_ticket_changelist")).content.decode()
    assert "delete_selected" not in page


@pytest.mark.django_db
def test_an_edit_with_bad_provider_fields_is_refused_before_anything_is_sent(
    admin_client, account_factory, sandbox
):
    from tickets import services

    account = account_factory("particlespace")
    ticket = services.create_ticket(account=account, title="Leaking faucet", description="1A")
    url = reverse("admin:tickets_ticket_change", args=[ticket.pk])
    form = ticket_form(account, status="open", extra__notify="true", extra__type="email")
    form.pop("account")  # read-only on edits
    response = admin_client.post(url, form)
    assert response.status_code == 200
    assert "Particle Space needs contacts to notify." in response.content.decode()
    assert response.context["adminform"].form.errors["extra__contacts"]  # on the field itself
    ticket.refresh_from_db()
    assert (ticket.status, ticket.revision) == ("new", 1)
    assert sandbox.control("calls") == {}


def seed(account, count: int, *, start: int = 0, **fields) -> None:
    Ticket.objects.bulk_create(
        Ticket(account=account, reference=f"TC-S{start + i:06d}", title=f"Seeded {start + i}", **fields)
        for i in range(count)
    )


@pytest.mark.django_db
def test_the_changelist_takes_the_same_few_queries_for_three_or_three_hundred_tickets(
    admin_client, account_factory
):
    kapture, keliweb = account_factory("kapture"), account_factory("keliweb")
    counts, pages = [], []
    for start, count in ((0, 3), (3, 297)):
        seed(
            kapture,
            count // 2 + 1,
            start=start,
            remote_id="9",
            remote_number="K-9",
            remote_url="https://kapture.example/t/9",
        )
        seed(keliweb, count // 2, start=start + 1000)
        with CaptureQueriesContext(connection) as queries:
            pages.append(admin_client.get(reverse("admin:tickets_ticket_changelist")).content.decode())
        counts.append(len(queries))
    assert counts[0] == counts[1] <= 10, counts
    assert '<td class="field-provider_kind">Keliweb</td>' in pages[0]
    assert '<td class="field-provider_kind">Kapture CX</td>' in pages[0]
    assert '<a href="https://kapture.example/t/9" target="_blank" rel="noopener">K-9</a>' in pages[0]


@pytest.mark.django_db
def test_the_changelist_filters_by_provider_kind_and_searches_requester_names(admin_client, account_factory):
    kapture, keliweb = account_factory("kapture"), account_factory("keliweb")
    seed(kapture, 2, requester_name="Ann Lee")
    seed(keliweb, 3, start=10, requester_name="Bob Stone")
    url = reverse("admin:tickets_ticket_changelist")
    by_kind = admin_client.get(url, {"account__kind__exact": "keliweb"}).context["cl"]
    assert {t.account.kind for t in by_kind.result_list} == {"keliweb"} and by_kind.result_count == 3
    by_name = admin_client.get(url, {"q": "Ann"}).context["cl"]
    assert [t.requester_name for t in by_name.result_list] == ["Ann Lee", "Ann Lee"]


@pytest.mark.django_db
def test_the_chosen_providers_own_fields_are_real_form_fields_saved_into_extra(admin_client, account_factory):
    account = account_factory("keliweb")
    add_url = reverse("admin:tickets_ticket_add")
    page = admin_client.get(add_url, {"account": account.pk}).content.decode()
    assert 'name="extra__deptid"' in page and "Keliweb fields" in page
    response = admin_client.post(add_url, ticket_form(account, extra__deptid="3", extra__clientid="0"))
    assert response.status_code == 200
    assert "greater than or equal to 1" in str(response.context["adminform"].form.errors["extra__clientid"])
    response = admin_client.post(add_url, ticket_form(account, extra__deptid="3", extra__clientid="12"))
    assert response.status_code == 302, response.content.decode()[:3000]
    ticket = Ticket.objects.get()
    assert ticket.extra["deptid"] == 3 and ticket.extra["clientid"] == 12
    change = admin_client.get(reverse("admin:tickets_ticket_change", args=[ticket.pk])).content.decode()
    assert 'name="extra__deptid" value="3"' in change


@pytest.mark.django_db
def test_the_change_page_says_what_the_provider_cannot_do(admin_client, account_factory):
    account = account_factory("keliweb")
    seed(account, 1, remote_id="4711", sync_state=SyncState.SYNCED)
    ticket = Ticket.objects.get()
    page = admin_client.get(reverse("admin:tickets_ticket_change", args=[ticket.pk])).content.decode()
    assert page.count("Keliweb cannot update a ticket after it is created — add a reply instead.") >= 2
    assert "Keliweb can create tickets." in page
    assert "No request can be built" in page  # the preview explains instead of showing nothing


@pytest.mark.django_db
def test_the_change_page_previews_the_request_without_secrets(admin_client, account_factory, sandbox):
    account = account_factory("kapture")
    seed(account, 1, requester_email="tim@acme.com")
    ticket = Ticket.objects.get()
    SyncAttempt.objects.bulk_create(
        SyncAttempt(
            ticket=ticket,
            account=account,
            operation="create",
            outcome="failed",
            started_at=ticket.created_at,
            error=f"attempt-no-{i}",
        )
        for i in range(25)
    )
    page = admin_client.get(reverse("admin:tickets_ticket_change", args=[ticket.pk])).content.decode()
    assert "Request the next sync would send" in page and "<code>POST http" in page
    assert "tim@acme.com" in page.split("Request the next sync would send")[1]
    for secret in sandbox.credentials["kapture"].values():
        assert secret not in page
    assert page.count("attempt-no-") == 20  # the sync history stays bounded


@pytest.mark.django_db
def test_a_knight_preview_shows_where_callbacks_go_but_not_the_secret(admin_client, account_factory):
    from providers.knight import KnightProvider

    account = account_factory(
        "knight",
        settings={
            **KnightProvider.demo_settings,
            "callback_base_url": "https://console.example.com",
        },
    )
    secret = account.get_callback_secrets()["current"]
    seed(account, 1)
    ticket = Ticket.objects.get()
    page = admin_client.get(reverse("admin:tickets_ticket_change", args=[ticket.pk])).content.decode()
    assert f"https://console.example.com/inbound/knight/{account.pk}/[redacted]/" in page
    assert secret not in page
