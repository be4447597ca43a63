"""Retention: delete the rows that would otherwise grow without bound.

Every provider call leaves a SyncAttempt, every callback an InboundEvent, every bulk action a
BulkJob; nothing else ever deletes them. Beat purges what is past its retention once a day
(`tickets.tasks.purge_old_records`; by hand: `manage.py purge_old_records`). What stays, and why:

- the newest attempt of each ticket, however old: whoever opens an old ticket still sees how its
  last sync ended;
- bulk jobs that have not finished: their task is still working from them.

Rows go in batches of primary keys, walked in key order, one DELETE ... WHERE id IN (...) each
(autocommit: each batch is its own short transaction), so purging a table of millions neither
holds one long transaction and its locks nor reads every row into memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from tickets.bulk import export_dir
from tickets.models import BulkJob, InboundEvent, SyncAttempt

FINISHED_JOB_STATES = (BulkJob.State.DONE, BulkJob.State.FAILED, BulkJob.State.CANCELLED)


def sync_attempts_due(cutoff: datetime) -> QuerySet:
    # The same order as the ticket's attempt list (-started_at, -id), so exactly one is newest.
    newer = SyncAttempt.objects.filter(ticket=OuterRef("ticket")).filter(
        Q(started_at__gt=OuterRef("started_at")) | Q(started_at=OuterRef("started_at"), pk__gt=OuterRef("pk"))
    )
    return SyncAttempt.objects.filter(started_at__lt=cutoff).filter(Q(ticket__isnull=True) | Exists(newer))


def inbound_events_due(cutoff: datetime) -> QuerySet:
    # Applied or not: an event the console could not use is never retried, and keeping those
    # forever would let a misconfigured sender grow the table without bound.
    return InboundEvent.objects.filter(received_at__lt=cutoff)


def bulk_jobs_due(cutoff: datetime) -> QuerySet:
    # A finished job without finished_at (set by hand, say) ages from when it was created.
    return BulkJob.objects.filter(state__in=FINISHED_JOB_STATES).filter(
        Q(finished_at__lt=cutoff) | Q(finished_at__isnull=True, created_at__lt=cutoff)
    )


def delete_export_files(job_ids: list[int]) -> None:
    """An export job's CSV (and the part files of one that failed) would outlive the job page
    that links to it, with the tickets' requesters in it. Deleted before the row, so a failure
    here leaves the job to be purged again tomorrow instead of files no page leads to."""
    for job in BulkJob.objects.filter(pk__in=job_ids, action="export_csv").only("pk"):
        directory = export_dir(job)
        if default_storage.exists(directory):
            for name in default_storage.listdir(directory)[1]:
                default_storage.delete(f"{directory}/{name}")


@dataclass(frozen=True)
class Kind:
    """One kind of row that ages out: where its retention is set, which rows are past it,
    what goes with them, and how `manage.py purge_old_records` names them."""

    setting: str  # the setting holding its retention in days (0 keeps it forever)
    due: Callable[[datetime], QuerySet]
    noun: str
    age: str  # which rows, with {days}
    before_delete: Callable[[list[int]], None] | None = None


KINDS = {
    "sync_attempts": Kind(
        "SYNC_ATTEMPT_RETENTION_DAYS",
        sync_attempts_due,
        "sync attempt(s)",
        "started more than {days} days ago",
    ),
    "inbound_events": Kind(
        "INBOUND_EVENT_RETENTION_DAYS",
        inbound_events_due,
        "inbound event(s)",
        "received more than {days} days ago",
    ),
    "bulk_jobs": Kind(
        "BULK_JOB_RETENTION_DAYS",
        bulk_jobs_due,
        "bulk job(s)",
        "finished more than {days} days ago",
        before_delete=delete_export_files,
    ),
}


def retention_days(kind: Kind) -> int:
    return getattr(settings, kind.setting)


def purge_old_records(
    *, now: datetime | None = None, batch_size: int = 5000, dry_run: bool = False
) -> dict[str, int]:
    """Delete what is past its retention; returns how many rows of each kind went (or, with
    `dry_run`, would go)."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    now = now or timezone.now()
    counts = {}
    for name, kind in KINDS.items():
        days = retention_days(kind)
        if days <= 0:  # 0 keeps forever; a negative value would otherwise delete everything
            counts[name] = 0
            continue
        due = kind.due(now - timedelta(days=days))
        counts[name] = due.count() if dry_run else delete_in_batches(due, batch_size, kind.before_delete)
    return counts


def delete_in_batches(
    due: QuerySet, batch_size: int, before_delete: Callable[[list[int]], None] | None = None
) -> int:
    deleted, after = 0, 0
    while ids := list(due.filter(pk__gt=after).order_by("pk").values_list("pk", flat=True)[:batch_size]):
        if before_delete:
            before_delete(ids)
        # The conditions are checked again in the DELETE: a row that changed since the SELECT stays.
        deleted += due.filter(pk__in=ids).delete()[0]
        after = ids[-1]
    return deleted
