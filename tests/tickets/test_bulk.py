"""Bulk actions as tracked jobs: started from the changelist at once, walked by a worker."""

import csv
import io

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.helpers import wait_for
from tickets import bulk
from tickets.models import BulkJob, Status, SyncState, Ticket

CHANGELIST = "admin:tickets_ticket_changelist"


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


def seed(account, count: int, *, start: int = 0, **fields) -> list[Ticket]:
    """Many tickets at once; bulk_create skips save(), so references are set here."""
    tickets = Ticket.objects.bulk_create(
        Ticket(
            account=account,
            reference=f"TC-S{start + i:06d}",
            title=f"Seeded {start + i}",
            revision=1,
            **fields,
        )
        for i in range(count)
    )
    return sorted(tickets, key=lambda t: t.pk)


def run_action(client, action: str, *, ids=(), select_across=False, query: str = "", **extra):
    data = {"action": action, "index": "0", "_selected_action": [str(pk) for pk in ids], **extra}
    if select_across:
        data["select_across"] = "1"
    return client.post(reverse(CHANGELIST) + (f"?{query}" if query else ""), data)


def job_from(response) -> BulkJob:
    assert response.status_code == 302, response.content.decode()[:2000]
    return BulkJob.objects.get(pk=int(response.url.rstrip("/").rsplit("/", 1)[-1]))


@pytest.mark.django_db
def test_starting_a_job_takes_the_same_few_queries_for_five_or_five_hundred_tickets(
    admin_client, account_factory
):
    account = account_factory("kapture")
    few, many = seed(account, 5), seed(account, 500, start=5)
    counts = []
    for tickets in (few, many):
        with CaptureQueriesContext(connection) as queries:
            job = job_from(
                run_action(admin_client, "change_status", ids=[t.pk for t in tickets], new_status="open")
            )
        counts.append(len(queries))
        assert (job.state, job.total, job.selection) == (
            "queued",
            len(tickets),
            {"ids": [t.pk for t in tickets]},
        )
    with CaptureQueriesContext(connection) as queries:
        job = job_from(
            run_action(
                admin_client, "sync_now", ids=[few[0].pk], select_across=True, query="status__exact=new"
            )
        )
    counts.append(len(queries))
    assert job.selection == {"query": "status__exact=new"}
    # Ticked ids are narrowed to what the user may see (one query); "select all" stores the
    # changelist's query string, which carries that filter already.
    assert counts[0] == counts[1] <= 12 and counts[2] <= counts[0], counts
    # Nothing was applied in the request.
    assert not Ticket.objects.exclude(status=Status.NEW).exists()


@pytest.mark.django_db
def test_select_all_covers_exactly_the_filtered_changelist_and_records_reasons(admin_client, account_factory):
    account = account_factory("motadata")  # its update carries the priority (Kapture's does not)
    open_tickets = seed(account, 7, status=Status.OPEN, sync_state=SyncState.SYNCED, remote_id="R")
    already_high = seed(account, 2, start=7, status=Status.OPEN, priority="high")
    closed = seed(account, 4, start=9, status=Status.CLOSED)
    job = job_from(
        run_action(
            admin_client,
            "change_priority",
            ids=[open_tickets[0].pk],
            select_across=True,
            query="status__exact=open",
            new_priority="high",
        )
    )
    assert bulk.run_job(job.pk) == "done"
    job.refresh_from_db()
    assert (job.total, job.processed, job.succeeded, job.skipped, job.failed) == (9, 9, 7, 2, 0)
    assert job.results["succeeded"]["Changed and queued for sync"]["count"] == 7
    assert sorted(job.results["skipped"]["Already set"]["ids"]) == [t.pk for t in already_high]
    changed = Ticket.objects.filter(pk__in=[t.pk for t in open_tickets])
    assert {(t.priority, t.revision, t.sync_state) for t in changed} == {("high", 2, SyncState.PENDING)}
    assert not Ticket.objects.filter(pk__in=[t.pk for t in closed], priority="high").exists()


@pytest.mark.django_db
def test_a_restarted_job_resumes_after_its_cursor(admin_client, account_factory, monkeypatch):
    account = account_factory("kapture")
    tickets = seed(account, 5)
    job = job_from(run_action(admin_client, "cancel", ids=[t.pk for t in tickets]))
    monkeypatch.setattr(bulk, "CHUNK_SIZE", 2)
    BulkJob.objects.filter(pk=job.pk).update(state=BulkJob.State.RUNNING)
    assert bulk.run_chunk(job.pk) is True  # then the worker dies
    assert bulk.run_job(job.pk) == "done"  # the message is delivered again
    job.refresh_from_db()
    assert (job.processed, job.succeeded, job.cursor) == (5, 5, tickets[-1].pk)
    assert job.results["succeeded"]["Cancelled before it reached the provider"]["count"] == 5
    assert set(Ticket.objects.values_list("status", "sync_state")) == {("cancelled", "cancelled")}


@pytest.mark.django_db
def test_export_csv_is_written_to_storage_and_downloaded(admin_client, account_factory, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    account = account_factory("kapture", name="Kapture EU")
    tickets = seed(account, 3, requester_email="ann@acme.com")
    Ticket.objects.filter(pk=tickets[1].pk).update(remote_id="77", remote_number="K-77")
    job = job_from(run_action(admin_client, "export_csv", ids=[t.pk for t in tickets]))
    assert bulk.run_job(job.pk) == "done"
    page = admin_client.get(reverse("admin:tickets_ticket_bulk_job", args=[job.pk])).content.decode()
    download_url = reverse("admin:tickets_ticket_bulk_job_download", args=[job.pk])
    assert download_url in page
    response = admin_client.get(download_url)
    assert response.status_code == 200 and response.streaming
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == list(bulk.EXPORT_COLUMNS)
    assert [row[0] for row in rows[1:]] == [t.reference for t in tickets]
    assert rows[2][2:4] == ["Kapture EU", "kapture"] and rows[2][7:9] == ["77", "K-77"]
    assert {row[10] for row in rows[1:]} == {"ann@acme.com"}


@pytest.mark.django_db
def test_staff_without_ticket_change_permission_cannot_run_or_see_bulk_jobs(client, account_factory):
    account = account_factory("kapture")
    tickets = seed(account, 2)
    job = BulkJob.objects.create(action="sync_now", selection={"ids": [tickets[0].pk]})
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_ticket"))
    client.force_login(viewer)
    listing = client.get(reverse(CHANGELIST))
    assert listing.status_code == 200 and "sync_now" not in listing.content.decode()
    run_action(client, "sync_now", ids=[t.pk for t in tickets])
    assert BulkJob.objects.count() == 1
    for name in ("bulk_job", "bulk_job_progress", "bulk_job_download"):
        assert client.get(reverse(f"admin:tickets_ticket_{name}", args=[job.pk])).status_code == 403
    assert client.post(reverse("admin:tickets_ticket_bulk_job_retry", args=[job.pk])).status_code == 403
    assert client.get(reverse("admin:tickets_bulkjob_changelist")).status_code == 403


def test_a_bulk_job_runs_in_a_real_worker_and_its_failures_can_be_retried(worker, account_factory, client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    account = account_factory("kapture")
    failed = seed(account, 3, sync_state=SyncState.FAILED, last_error="HTTP 400")
    unknown = seed(account, 2, start=3, sync_state=SyncState.NEEDS_ATTENTION)
    cancelled = seed(account, 1, start=5, sync_state=SyncState.CANCELLED)
    job = job_from(run_action(client, "sync_now", ids=[t.pk for t in failed + unknown + cancelled]))
    assert job.state == BulkJob.State.QUEUED
    progress_url = reverse("admin:tickets_ticket_bulk_job_progress", args=[job.pk])
    seen = set()

    def finished():
        data = client.get(progress_url).json()
        seen.add(data["state"])
        return data if data["finished"] else None

    data = wait_for(finished, timeout=60, interval=0.1, message="the bulk job did not finish")
    assert data["state"] == "done" and seen <= {"queued", "running", "done"}
    assert (data["total"], data["processed"], data["succeeded"], data["failed"], data["skipped"]) == (
        6,
        6,
        3,
        2,
        1,
    )
    assert "unknown" in data["results_html"] and "Sync cancelled" in data["results_html"]
    job.refresh_from_db()
    assert job.started_at and job.finished_at and job.started_at <= job.finished_at
    assert sorted(job.results["failed_ids"]) == [t.pk for t in unknown]
    # The queued tickets really reach the provider through the sync worker.
    wait_for(
        lambda: Ticket.objects.filter(pk__in=[t.pk for t in failed], sync_state="synced").count() == 3,
        timeout=60,
        message="the re-queued tickets were not synced",
    )
    page = client.get(reverse("admin:tickets_ticket_bulk_job", args=[job.pk])).content.decode()
    assert "Retry the 2 failed tickets" in page and 'id="job-progress" max="100" value="100"' in page
    jobs = client.get(reverse("admin:tickets_bulkjob_changelist")).content.decode()
    assert reverse("admin:tickets_ticket_bulk_job", args=[job.pk]) in jobs
    retry = job_from(client.post(reverse("admin:tickets_ticket_bulk_job_retry", args=[job.pk])))
    assert (retry.action, retry.selection) == ("sync_now", {"ids": [t.pk for t in unknown]})


@pytest.mark.django_db
def test_retry_failed_and_cancel_say_per_ticket_what_they_did(account_factory):
    from tickets import services

    keliweb, kapture = account_factory("keliweb"), account_factory("kapture")
    failed = seed(kapture, 2, sync_state=SyncState.FAILED)
    unknown = seed(kapture, 1, start=2, sync_state=SyncState.NEEDS_ATTENTION)
    created_in_keliweb = seed(keliweb, 1, start=3, sync_state=SyncState.SYNCED, remote_id="88")
    ids = [t.pk for t in failed + unknown + created_in_keliweb]

    retried = services.bulk_retry_failed(ticket_ids=ids + [999_999])
    assert retried.groups["succeeded"] == {"Queued again": [t.pk for t in failed]}
    assert retried.groups["skipped"]["No longer exists"] == [999_999]
    assert retried.groups["skipped"]["Not failed"] == [created_in_keliweb[0].pk]
    assert set(Ticket.objects.filter(pk__in=[t.pk for t in failed]).values_list("sync_state", flat=True)) == {
        SyncState.PENDING
    }

    cancelled = services.bulk_cancel(ticket_ids=[unknown[0].pk, created_in_keliweb[0].pk])
    assert cancelled.groups["succeeded"] == {"Cancelled before it reached the provider": [unknown[0].pk]}
    # Keliweb cannot take the change: counted apart from what succeeded, and never "synced".
    assert cancelled.groups["kept_here"] == {
        "Changed here only: Keliweb cannot update a ticket after it is created — add a reply instead.": [
            created_in_keliweb[0].pk
        ],
    }
    keliweb_ticket = Ticket.objects.get(pk=created_in_keliweb[0].pk)
    assert (keliweb_ticket.status, keliweb_ticket.sync_state, keliweb_ticket.revision) == (
        Status.CANCELLED,
        SyncState.LOCAL_ONLY,
        2,
    )


@pytest.mark.django_db
def test_a_change_says_which_tickets_it_queued_and_which_wait_for_a_person(account_factory):
    from tickets import services

    kapture = account_factory("kapture")
    synced = seed(kapture, 2, sync_state=SyncState.SYNCED, remote_id="7")
    unknown_create = seed(kapture, 1, start=2, sync_state=SyncState.NEEDS_ATTENTION)
    cancelled = seed(kapture, 1, start=3, sync_state=SyncState.CANCELLED)
    ids = [t.pk for t in synced + unknown_create + cancelled]

    changed = services.bulk_change_fields(ticket_ids=ids, changes={"status": Status.RESOLVED})
    assert changed.groups["succeeded"] == {
        "Changed and queued for sync": [t.pk for t in synced],
        "Changed here; not sent until a person settles its unknown create": [unknown_create[0].pk],
        "Changed here; not sent: sync is cancelled for this ticket": [cancelled[0].pk],
    }
    rows = {t.pk: t for t in Ticket.objects.filter(pk__in=ids)}
    assert {rows[pk].status for pk in ids} == {Status.RESOLVED}
    assert {rows[pk].revision for pk in ids} == {2}  # every change is a new revision to send later
    assert rows[unknown_create[0].pk].sync_state == SyncState.NEEDS_ATTENTION
    assert rows[cancelled[0].pk].sync_state == SyncState.CANCELLED
    assert {rows[t.pk].sync_state for t in synced} == {SyncState.PENDING}


def closed_in_kapture_only(kapture):
    """A synced ticket that someone then closed in Kapture, not in the console."""
    from providers.kapture import KaptureProvider
    from tickets.models import Ticket

    ticket = Ticket.objects.create(
        account=kapture,
        title="Printer on fire",
        revision=1,
        synced_revision=1,
        sync_state="synced",
        status="open",
    )
    provider = KaptureProvider(kapture)
    ticket.remote_id = provider.create(ticket).remote_id
    ticket.save()
    ticket.status = "closed"
    provider.update(ticket)
    ticket.status = "open"  # the console's copy still says open
    return ticket


@pytest.mark.django_db(transaction=True)  # the pull fetches on pool threads, own connections
def test_pull_now_reads_remote_state_for_readable_providers_and_says_why_not_for_others(
    sandbox, account_factory
):
    from tickets import services
    from tickets.models import Ticket

    ticket = closed_in_kapture_only(account_factory("kapture"))
    particle = account_factory("particlespace")
    unreadable = Ticket.objects.create(account=particle, title="x", remote_id="tic_1", sync_state="synced")

    outcome = services.bulk_pull(ticket_ids=[ticket.pk, unreadable.pk])
    assert outcome.groups["succeeded"] == {"Remote state read": [ticket.pk]}
    [reason] = outcome.groups["skipped"]
    assert "no read endpoint" in reason
    ticket.refresh_from_db()
    assert (ticket.status, ticket.remote_status) == ("closed", "CL")


@pytest.mark.worker
def test_a_job_whose_message_was_lost_is_published_again_and_runs(
    worker, sandbox, account_factory, admin_user
):
    from datetime import timedelta

    from django.utils import timezone

    from tests.helpers import wait_for
    from tickets import bulk
    from tickets.models import BulkJob, Ticket

    ticket = Ticket.objects.create(account=account_factory("kapture"), title="x", sync_state="synced")
    job = BulkJob.objects.create(
        action="change_priority",
        params={"priority": "low"},
        selection={"ids": [ticket.pk]},
        total=1,
        created_by=admin_user,
    )
    # Saved while the broker was down: no message was ever published.
    BulkJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(minutes=10))
    assert bulk.republish_stale_jobs() == 1
    wait_for(lambda: BulkJob.objects.get(pk=job.pk).state == BulkJob.State.DONE, message="job never ran")
    ticket.refresh_from_db()
    assert ticket.priority == "low"


@pytest.mark.django_db(transaction=True)
def test_a_pull_now_job_reads_remote_state_inside_its_chunk_on_every_database(
    sandbox, account_factory, admin_user
):
    """The job applies each chunk in one transaction; the pull must not wait on it (on SQLite a
    pool thread's write waited for the chunk's lock until the busy timeout, and the job failed)."""
    from tickets import bulk
    from tickets.models import BulkJob

    ticket = closed_in_kapture_only(account_factory("kapture"))
    job = BulkJob.objects.create(
        action="pull_now", selection={"ids": [ticket.pk]}, total=1, created_by=admin_user
    )
    assert bulk.run_job(job.pk) == BulkJob.State.DONE
    job.refresh_from_db()
    assert (job.succeeded, job.failed, job.error) == (1, 0, "")
    ticket.refresh_from_db()
    assert (ticket.status, ticket.remote_status) == ("closed", "CL")
