"""Publishing work to the workers, by task name (the bottom of tickets/: it imports no task).

Publishing by name keeps every module that wakes a worker below tickets/tasks.py, which
imports them all: a module here never needs the task function, only the name it is
registered under. The database stays the source of truth; a message only wakes a worker.
A failed push publish is logged, not raised: the row stays pending and the sweeper
publishes it again, so a broker outage delays work but loses none.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from console.celery import app
from tickets.models import Reply, SyncState, Ticket

log = logging.getLogger(__name__)

# The names tickets/tasks.py and tickets/bulk.py register their tasks under.
PUSH_TICKET = "tickets.tasks.push_ticket"
PUSH_REPLY = "tickets.tasks.push_reply"
PULL_ACCOUNT = "tickets.tasks.pull_account"
RUN_BULK_JOB = "tickets.bulk.run_bulk_job"


def publish(task_name: str, *args, countdown: float | None = None) -> None:
    """One message for `task_name`; raises what the broker raises."""
    app.send_task(task_name, args=args, countdown=countdown or None)


def push_tickets(ticket_ids: list[int], *, countdown: float = 0) -> None:
    """Publish push messages, noting when each was announced (`enqueued_at`): the sweeper
    republishes a due row only once its announcement is old or missing."""
    if not ticket_ids:
        return
    due = timezone.now() + timedelta(seconds=countdown)
    Ticket.objects.filter(pk__in=ticket_ids).update(enqueued_at=due)
    for ticket_id in ticket_ids:
        try:
            publish(PUSH_TICKET, ticket_id, countdown=countdown)
        except Exception:  # noqa: BLE001 - any broker failure; the sweeper covers it
            log.warning("Could not publish push for ticket %s; the sweeper will retry.", ticket_id)
            unpublished = ticket_ids[ticket_ids.index(ticket_id):]
            Ticket.objects.filter(pk__in=unpublished).update(enqueued_at=None)
            return


def push_ticket_on_commit(ticket_id: int) -> None:
    transaction.on_commit(lambda: push_tickets([ticket_id]))


def push_replies(reply_ids: list[int], *, countdown: float = 0) -> None:
    """Publish reply pushes; a failed publish is left to the sweeper."""
    for reply_id in reply_ids:
        try:
            publish(PUSH_REPLY, reply_id, countdown=countdown)
        except Exception:  # noqa: BLE001 - any broker failure; the sweeper covers it
            log.warning("Could not publish push for reply %s; the sweeper will retry.", reply_id)
            return


def push_waiting_replies(ticket_id: int) -> None:
    """The ticket now exists remotely: publish its replies that were waiting for that."""
    push_replies(list(
        Reply.objects.filter(ticket_id=ticket_id, sync_state=SyncState.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=timezone.now()))
        .values_list("pk", flat=True)
    ))


def pull_accounts(account_ids: list[int]) -> None:
    for account_id in account_ids:
        publish(PULL_ACCOUNT, account_id)


def run_bulk_job(job_id: int) -> None:
    publish(RUN_BULK_JOB, job_id)
