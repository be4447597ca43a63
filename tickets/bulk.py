"""Bulk actions over tickets as tracked jobs (tickets.BulkJob).

The admin action only records the job: the selection as explicit ids, or, for "select all",
as the changelist's query string (filters and search), so it answers at once whatever the
selection's size. A Celery task walks the selection by primary key in chunks, applies the
action through tickets.services one chunk per transaction (together with the job's counters
and cursor, so a re-delivered or restarted task resumes exactly where the last one stopped),
and hands itself on to a fresh task when its time slice is used up.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.contrib import admin
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.http import HttpRequest, QueryDict
from django.utils import timezone

from tickets import access, dispatch, services
from tickets.models import BulkJob, Ticket

log = logging.getLogger(__name__)

CHUNK_SIZE = 500
#: A task hands the rest of the job to a new task after this many seconds (task time limits).
TIME_SLICE_SECONDS = 60.0
#: Example ticket ids kept per reason for the job page.
EXAMPLES_PER_REASON = 20
#: A selected ticket the job's starter may not (or no longer) see, or one deleted since.
NOT_AVAILABLE = "Not found, or not visible to whoever started the job"
EXPORT_COLUMNS = (
    "reference",
    "title",
    "account",
    "provider",
    "status",
    "priority",
    "sync_state",
    "remote_id",
    "remote_number",
    "remote_url",
    "requester_email",
    "requester_name",
    "created_at",
)


@dataclass(frozen=True)
class BulkAction:
    label: str
    #: Applies the action to one chunk of ticket ids; None for the export, written here.
    apply: Callable[[list[int], dict[str, Any]], services.BulkOutcome] | None


ACTIONS: dict[str, BulkAction] = {
    "sync_now": BulkAction("Sync now", lambda ids, params: services.bulk_sync_now(ticket_ids=ids)),
    "retry_failed": BulkAction(
        "Retry failed", lambda ids, params: services.bulk_retry_failed(ticket_ids=ids)
    ),
    "change_status": BulkAction(
        "Change status",
        lambda ids, params: services.bulk_change_fields(ticket_ids=ids, changes={"status": params["status"]}),
    ),
    "change_priority": BulkAction(
        "Change priority",
        lambda ids, params: services.bulk_change_fields(
            ticket_ids=ids, changes={"priority": params["priority"]}
        ),
    ),
    "pull_now": BulkAction("Pull now", lambda ids, params: services.bulk_pull(ticket_ids=ids)),
    "cancel": BulkAction("Cancel", lambda ids, params: services.bulk_cancel(ticket_ids=ids)),
    "export_csv": BulkAction("Export CSV", None),
}


# --- starting a job (in the request: no per-ticket work) ------------------------------------
def start_job(*, action: str, params: dict[str, Any], selection: dict[str, Any], user) -> BulkJob:
    """Record the job and publish its task after the commit. One INSERT whatever the selection."""
    if action not in ACTIONS:
        raise services.TicketActionError(f"Unknown bulk action '{action}'.")
    ids = selection.get("ids")
    job = BulkJob.objects.create(
        action=action,
        params=params,
        selection=selection,
        created_by=user,
        total=len(ids) if ids is not None else 0,
    )
    transaction.on_commit(lambda: publish(job.pk))
    return job


def publish(job_id: int) -> None:
    try:
        dispatch.run_bulk_job(job_id)
    except Exception:  # noqa: BLE001 - any broker failure: the job page offers to start it again
        log.warning("Could not publish bulk job %s; it stays queued.", job_id)


#: A job still queued this long after it was saved lost its message (broker down at publish).
QUEUED_TOO_LONG = timedelta(minutes=5)


def republish_stale_jobs() -> int:
    """Publish queued jobs whose message never came (beat, every minute). A duplicate is
    harmless: chunks are applied under the job's row lock, from its cursor."""
    stale = list(
        BulkJob.objects.filter(
            state=BulkJob.State.QUEUED, created_at__lt=timezone.now() - QUEUED_TOO_LONG
        ).values_list("pk", flat=True)[:100]
    )
    for job_id in stale:
        publish(job_id)
    return len(stale)


def retry_failed_of(*, job: BulkJob, user) -> BulkJob:
    """A new job with the same action over exactly the tickets this job failed on."""
    failed_ids = sorted(set(job.results.get("failed_ids", [])))
    if not failed_ids:
        raise services.TicketActionError(f"Job #{job.pk} has no failed tickets to retry.")
    return start_job(action=job.action, params=job.params, selection={"ids": failed_ids}, user=user)


# --- walking the selection ------------------------------------------------------------------
def selection_queryset(job: BulkJob):
    """The tickets a "select all" job covers: the changelist's own filters and search, rebuilt
    from its query string for the user who asked (so it matches what they saw)."""
    model_admin = admin.site.get_model_admin(Ticket)
    request = HttpRequest()
    request.method = "GET"
    request.path = "/"
    request.GET = QueryDict(job.selection.get("query", ""))
    request.user = job.created_by
    return model_admin.get_changelist_instance(request).queryset


def next_chunk(job: BulkJob, selected=None) -> list[int]:
    """The next CHUNK_SIZE ticket ids after the job's cursor, in key order (`selected`: the
    rebuilt queryset of a "select all" job)."""
    ids = job.selection.get("ids")
    if ids is not None:
        return sorted(pk for pk in ids if pk > job.cursor)[:CHUNK_SIZE]
    queryset = (selected if selected is not None else selection_queryset(job)).filter(pk__gt=job.cursor)
    return list(queryset.order_by("pk").values_list("pk", flat=True)[:CHUNK_SIZE])


def merge_outcome(job: BulkJob, outcome: services.BulkOutcome) -> None:
    """Add one chunk's outcome to the job's counters and per-reason results."""
    results = job.results
    for kind, reasons in outcome.groups.items():
        grouped = results.setdefault(kind, {})
        for reason, ids in reasons.items():
            entry = grouped.setdefault(reason, {"count": 0, "ids": []})
            entry["count"] += len(ids)
            entry["ids"] = (entry["ids"] + ids)[:EXAMPLES_PER_REASON]
        if kind == services.FAILED:
            # All of them, not only examples: "retry the failed ones" needs exactly these.
            results.setdefault("failed_ids", []).extend(pk for ids in reasons.values() for pk in ids)
    job.succeeded += outcome.count(services.SUCCEEDED)
    job.failed += outcome.count(services.FAILED)
    job.skipped += outcome.count(services.SKIPPED)
    job.kept_here += outcome.count(services.KEPT_HERE)
    job.processed = job.succeeded + job.failed + job.skipped + job.kept_here


# --- export -------------------------------------------------------------------------------
def export_dir(job: BulkJob) -> str:
    return f"exports/job-{job.pk}"


# A cell starting with one of these is read as a formula by spreadsheet programs (OWASP
# "CSV injection"): =HYPERLINK(...) in a title would run when the export is opened.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> str:
    """The cell as text, with a leading ' when a spreadsheet would take it as a formula."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def export_chunk(job: BulkJob, ticket_ids: list[int]) -> services.BulkOutcome:
    """Write one chunk's rows as a part file in storage (parts survive a restarted task)."""
    outcome = services.BulkOutcome()
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    written = []
    for ticket in Ticket.objects.select_related("account").filter(pk__in=ticket_ids).order_by("pk"):
        writer.writerow(
            [
                spreadsheet_safe(value)
                for value in (
                    ticket.reference,
                    ticket.title,
                    ticket.account.name,
                    ticket.account.kind,
                    ticket.status,
                    ticket.priority,
                    ticket.sync_state,
                    ticket.remote_id,
                    ticket.remote_number,
                    ticket.remote_url,
                    ticket.requester_email,
                    ticket.requester_name,
                    ticket.created_at.isoformat(),
                )
            ]
        )
        written.append(ticket.pk)
    part = f"{export_dir(job)}/part-{ticket_ids[0]:012d}.csv"
    if default_storage.exists(part):  # written by a try whose transaction did not commit
        default_storage.delete(part)
    default_storage.save(part, ContentFile(buffer.getvalue().encode()))
    outcome.add(services.SUCCEEDED, "Exported", written)
    outcome.add(services.SKIPPED, "No longer exists", sorted(set(ticket_ids) - set(written)))
    return outcome


def finish_export(job: BulkJob) -> str:
    """Join the part files (in key order) into one CSV; returns its storage name."""
    directory = export_dir(job)
    _, parts = default_storage.listdir(directory) if default_storage.exists(directory) else ([], [])
    buffer = io.StringIO()
    csv.writer(buffer).writerow(EXPORT_COLUMNS)
    for part in sorted(name for name in parts if name.startswith("part-")):
        with default_storage.open(f"{directory}/{part}") as handle:
            buffer.write(handle.read().decode())
    content = ContentFile(buffer.getvalue().encode())
    name = default_storage.save(f"{directory}/tickets-job-{job.pk}.csv", content)
    for part in parts:
        if part.startswith("part-"):
            default_storage.delete(f"{directory}/{part}")
    return name


# --- the worker side ------------------------------------------------------------------------
def run_job(job_id: int, *, time_slice: float = TIME_SLICE_SECONDS) -> str:
    """Process chunks until the selection is done or the time slice is used; returns the state."""
    started = time.monotonic()
    claimed = BulkJob.objects.filter(pk=job_id, state__in=[BulkJob.State.QUEUED, BulkJob.State.RUNNING])
    job = claimed.first()
    if job is None:
        return "not-runnable"
    try:
        selected = None if "ids" in job.selection else selection_queryset(job)
    except Exception as exc:  # noqa: BLE001 - e.g. a filter that no longer exists
        return fail(job_id, f"The selection could not be read: {exc}")
    if job.state == BulkJob.State.QUEUED:
        total = job.total if selected is None else selected.count()
        claimed.filter(state=BulkJob.State.QUEUED).update(
            state=BulkJob.State.RUNNING, started_at=timezone.now(), total=total
        )
    while time.monotonic() - started < time_slice:
        try:
            more = run_chunk(job_id, selected)
        except Exception as exc:  # noqa: BLE001 - recorded on the job for the person who asked
            log.exception("Bulk job %s failed", job_id)
            return fail(job_id, f"{type(exc).__name__}: {exc}")
        if not more:
            return BulkJob.objects.values_list("state", flat=True).get(pk=job_id)
    publish(job_id)  # the rest goes on in a fresh task, from the cursor
    return BulkJob.State.RUNNING


def run_chunk(job_id: int, selected=None) -> bool:
    """One chunk in one transaction with the job's counters and cursor; False when finished.

    The job row is locked first, so two deliveries of the same task never apply a chunk twice.
    """
    with transaction.atomic():
        job = BulkJob.objects.select_for_update().get(pk=job_id)
        if job.state != BulkJob.State.RUNNING:
            return False
        ticket_ids = next_chunk(job, selected)
        if not ticket_ids:
            if job.action == "export_csv":
                job.results["file"] = finish_export(job)
            job.state, job.finished_at = BulkJob.State.DONE, timezone.now()
            job.save(update_fields=["state", "finished_at", "results"])
            return False
        # Only what the starter may see now (tickets/access.py), asked again for every chunk:
        # a membership removed mid-job stops it there. The words do not say which it was.
        allowed = set(access.bulk_job_tickets(job).filter(pk__in=ticket_ids).values_list("pk", flat=True))
        outcome = services.BulkOutcome()
        if allowed:
            action, chosen = ACTIONS[job.action], [pk for pk in ticket_ids if pk in allowed]
            outcome = export_chunk(job, chosen) if action.apply is None else action.apply(chosen, job.params)
        outcome.add(services.SKIPPED, NOT_AVAILABLE, [pk for pk in ticket_ids if pk not in allowed])
        merge_outcome(job, outcome)
        job.cursor = ticket_ids[-1]
        job.save(
            update_fields=["cursor", "processed", "succeeded", "failed", "skipped", "kept_here", "results"]
        )
    return True


def fail(job_id: int, message: str) -> str:
    BulkJob.objects.filter(pk=job_id).update(
        state=BulkJob.State.FAILED, error=message[:2000], finished_at=timezone.now()
    )
    return BulkJob.State.FAILED


@shared_task(name="tickets.bulk.run_bulk_job")
def run_bulk_job(job_id: int) -> str:
    return run_job(job_id)


# --- what the job page shows ----------------------------------------------------------------
def progress(job: BulkJob) -> dict[str, Any]:
    percent = (
        100 if job.state == BulkJob.State.DONE else (int(100 * job.processed / job.total) if job.total else 0)
    )
    return {
        "id": job.pk,
        "action": ACTIONS[job.action].label if job.action in ACTIONS else job.action,
        "state": job.state,
        "state_label": job.get_state_display(),
        "total": job.total,
        "processed": job.processed,
        "succeeded": job.succeeded,
        "failed": job.failed,
        "skipped": job.skipped,
        "kept_here": job.kept_here,
        "percent": min(percent, 100),
        "error": job.error,
        "finished": job.state in (BulkJob.State.DONE, BulkJob.State.FAILED, BulkJob.State.CANCELLED),
        "has_file": bool(job.results.get("file")),
    }


#: Tickets named per reason on the job page (a failed group keeps every id for the retry).
EXAMPLES_SHOWN = 10
OUTCOME_LABELS = {
    services.FAILED: "Failed",
    services.SKIPPED: "Skipped",
    services.KEPT_HERE: "Kept here only",
    services.SUCCEEDED: "Succeeded",
}


def grouped_results(job: BulkJob) -> list[dict[str, Any]]:
    """Per-reason rows for the job page: outcome, reason, count, and the first few tickets
    as (id, reference) — one query for the whole page."""
    rows = []
    for kind, label in OUTCOME_LABELS.items():
        for reason, entry in sorted(job.results.get(kind, {}).items(), key=lambda item: -item[1]["count"]):
            rows.append(
                {
                    "outcome": kind,
                    "label": label,
                    "reason": reason,
                    "count": entry["count"],
                    "ids": entry["ids"][:EXAMPLES_SHOWN],
                }
            )
    shown = {pk for row in rows for pk in row["ids"]}
    references = dict(Ticket.objects.filter(pk__in=shown).values_list("pk", "reference"))
    for row in rows:
        # A ticket deleted since the job ran is named by its id, without a link.
        row["examples"] = [(pk, references.get(pk)) for pk in row.pop("ids")]
        row["more"] = row["count"] - len(row["examples"])
    return rows
