"""Retention: old sync attempts, inbound events and finished bulk jobs go; what a person needs stays."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tickets.models import BulkJob, InboundEvent, SyncAttempt, Ticket
from tickets.retention import purge_old_records

pytestmark = pytest.mark.django_db


def ago(days: float):
    return timezone.now() - timedelta(days=days)


def ticket_of(account, title: str = "Printer on fire") -> Ticket:
    return Ticket.objects.create(account=account, title=title, revision=1)


def attempt(account, ticket, *, days_old: float, operation: str = "update") -> SyncAttempt:
    return SyncAttempt.objects.create(
        ticket=ticket, account=account, operation=operation, outcome="success", started_at=ago(days_old)
    )


def inbound(account, *, days_old: float, applied: bool) -> InboundEvent:
    digest = f"{InboundEvent.objects.count():064d}"
    event = InboundEvent.objects.create(account=account, digest=digest, payload={}, applied=applied)
    InboundEvent.objects.filter(pk=event.pk).update(received_at=ago(days_old))  # auto_now_add
    return event


def job(state: str, *, finished_days_ago: float | None, created_days_ago: float, **fields) -> BulkJob:
    finished_at = None if finished_days_ago is None else ago(finished_days_ago)
    created = BulkJob.objects.create(action="sync_now", state=state, finished_at=finished_at, **fields)
    BulkJob.objects.filter(pk=created.pk).update(created_at=ago(created_days_ago))
    return created


def ids(queryset) -> set[int]:
    return set(queryset.values_list("pk", flat=True))


@pytest.fixture
def account(account_factory):
    return account_factory("kapture")


def test_old_attempts_go_recent_ones_stay_and_every_ticket_keeps_its_newest(account):
    busy = ticket_of(account)
    old_of_busy = [attempt(account, busy, days_old=days) for days in (200, 150, 91)]
    recent = attempt(account, busy, days_old=1)
    quiet = ticket_of(account, "Forgotten since spring")
    older, last_sync_of_quiet = attempt(account, quiet, days_old=300), attempt(account, quiet, days_old=120)
    # Two calls in the same instant: the later row is the newest, as in the ticket's attempt list.
    tied = ticket_of(account, "Two calls at once")
    moment = ago(100)
    first_of_tied, second_of_tied = (
        SyncAttempt.objects.create(
            ticket=tied, account=account, operation="create", outcome="retry", started_at=moment
        )
        for _ in range(2)
    )
    old_connection_test = attempt(account, None, days_old=95, operation="test")
    recent_connection_test = attempt(account, None, days_old=3, operation="test")

    counts = purge_old_records()

    assert counts["sync_attempts"] == len(old_of_busy) + 1 + 1 + 1
    assert ids(SyncAttempt.objects.all()) == {
        recent.pk,
        last_sync_of_quiet.pk,
        second_of_tied.pk,
        recent_connection_test.pk,
    }
    assert list(quiet.attempts_log.all()) == [last_sync_of_quiet]  # how its last sync ended
    assert not SyncAttempt.objects.filter(pk__in=[older.pk, first_of_tied.pk, old_connection_test.pk])
    assert purge_old_records()["sync_attempts"] == 0  # nothing more is due on a second run


def test_batches_smaller_than_what_is_due_still_delete_all_of_it_a_batch_per_statement(account):
    busy, quiet = ticket_of(account), ticket_of(account, "Quiet")
    for days in range(100, 112):
        attempt(account, busy, days_old=days)
    kept_recent = attempt(account, busy, days_old=2)
    for days in range(120, 125):
        attempt(account, quiet, days_old=days)  # the one 120 days old is quiet's newest
    kept_newest = SyncAttempt.objects.get(ticket=quiet, started_at__gt=ago(120.5))

    with CaptureQueriesContext(connection) as queries:
        counts = purge_old_records(batch_size=3)

    assert counts["sync_attempts"] == 12 + 4
    assert ids(SyncAttempt.objects.all()) == {kept_recent.pk, kept_newest.pk}
    deletes = [query["sql"] for query in queries if query["sql"].startswith("DELETE")]
    assert len(deletes) == 6  # 16 rows due, at most 3 per statement: never one huge DELETE


def test_old_inbound_events_go_applied_or_not_recent_ones_stay(account):
    inbound(account, days_old=91, applied=True)
    inbound(account, days_old=400, applied=False)  # never usable, never retried
    recent_applied = inbound(account, days_old=10, applied=True)
    recent_unapplied = inbound(account, days_old=10, applied=False)

    assert purge_old_records()["inbound_events"] == 2

    assert ids(InboundEvent.objects.all()) == {recent_applied.pk, recent_unapplied.pk}


def test_finished_bulk_jobs_go_after_their_retention_unfinished_ones_stay(account, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    done = job(BulkJob.State.DONE, finished_days_ago=31, created_days_ago=31)
    failed = job(BulkJob.State.FAILED, finished_days_ago=45, created_days_ago=45)
    cancelled_without_finish_time = job(BulkJob.State.CANCELLED, finished_days_ago=None, created_days_ago=60)
    export = job(BulkJob.State.DONE, finished_days_ago=40, created_days_ago=40)
    BulkJob.objects.filter(pk=export.pk).update(action="export_csv")
    export_file = default_storage.save(
        f"exports/job-{export.pk}/tickets-job-{export.pk}.csv", ContentFile(b"reference\nTC-000001\n")
    )
    BulkJob.objects.filter(pk=export.pk).update(results={"file": export_file})
    recently_done = job(BulkJob.State.DONE, finished_days_ago=5, created_days_ago=40)
    running = job(BulkJob.State.RUNNING, finished_days_ago=None, created_days_ago=90)
    queued = job(BulkJob.State.QUEUED, finished_days_ago=None, created_days_ago=90)

    assert purge_old_records()["bulk_jobs"] == 4

    assert ids(BulkJob.objects.all()) == {recently_done.pk, running.pk, queued.pk}
    assert not BulkJob.objects.filter(pk__in=[done.pk, failed.pk, cancelled_without_finish_time.pk])
    assert not default_storage.exists(export_file)  # no CSV of requesters left behind the job


def test_zero_days_keeps_that_kind_forever(account, settings):
    settings.SYNC_ATTEMPT_RETENTION_DAYS = 0
    settings.INBOUND_EVENT_RETENTION_DAYS = 0
    settings.BULK_JOB_RETENTION_DAYS = 0
    ticket = ticket_of(account)
    attempts = {attempt(account, ticket, days_old=days).pk for days in (3000, 2000)}
    event = inbound(account, days_old=3000, applied=True)
    finished = job(BulkJob.State.DONE, finished_days_ago=3000, created_days_ago=3000)

    assert purge_old_records() == {"sync_attempts": 0, "inbound_events": 0, "bulk_jobs": 0}
    assert ids(SyncAttempt.objects.all()) == attempts
    assert ids(InboundEvent.objects.all()) == {event.pk}
    assert ids(BulkJob.objects.all()) == {finished.pk}


def test_the_command_dry_run_counts_and_deletes_nothing_then_the_real_run_deletes(account, settings):
    settings.INBOUND_EVENT_RETENTION_DAYS = 0
    ticket = ticket_of(account)
    for days in (200, 100):
        attempt(account, ticket, days_old=days)
    attempt(account, ticket, days_old=1)
    inbound(account, days_old=200, applied=True)
    job(BulkJob.State.DONE, finished_days_ago=60, created_days_ago=60)
    before = (SyncAttempt.objects.count(), InboundEvent.objects.count(), BulkJob.objects.count())

    out = StringIO()
    call_command("purge_old_records", "--dry-run", stdout=out)

    assert out.getvalue().splitlines() == [
        "Would delete 2 sync attempt(s): started more than 90 days ago.",
        "Kept forever (INBOUND_EVENT_RETENTION_DAYS=0): inbound event(s).",
        "Would delete 1 bulk job(s): finished more than 30 days ago.",
    ]
    assert (SyncAttempt.objects.count(), InboundEvent.objects.count(), BulkJob.objects.count()) == before

    out = StringIO()
    call_command("purge_old_records", stdout=out)

    assert "Deleted 2 sync attempt(s)" in out.getvalue() and "Deleted 1 bulk job(s)" in out.getvalue()
    assert (SyncAttempt.objects.count(), InboundEvent.objects.count(), BulkJob.objects.count()) == (1, 1, 0)
