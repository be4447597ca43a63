"""Publishing work to the workers, by task name (the bottom of tickets/: it imports no task).

Publishing by name keeps every module that wakes a worker below tickets/tasks.py, which
imports them all: a module here never needs the task function, only the name it is
registered under. The database stays the source of truth; a message only wakes a worker.
A failed push publish is logged, not raised: the row stays pending and the sweeper
publishes it again, so a broker outage delays work but loses none.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from console.celery import app
from tickets.models import Reply, SyncState, Ticket

log = logging.getLogger(__name__)

# The names tickets/tasks.py and tickets/bulk.py register their tasks under. Pushes are
# published as account nudges (PUSH_ACCOUNT): the worker claims the account's due rows in a
# batch. PUSH_TICKET and PUSH_REPLY stay registered for messages queued before that.
PUSH_ACCOUNT = "tickets.tasks.push_account"
PUSH_TICKET = "tickets.tasks.push_ticket"
PUSH_REPLY = "tickets.tasks.push_reply"
PULL_ACCOUNT = "tickets.tasks.pull_account"
RUN_BULK_JOB = "tickets.bulk.run_bulk_job"


def publish(task_name: str, *args, countdown: float | None = None) -> None:
    """One message for `task_name`; raises what the broker raises."""
    app.send_task(task_name, args=args, countdown=countdown or None)


def nudge_accounts(account_ids, *, countdown: float = 0) -> list[int]:
    """One push message per account (duplicates dropped); returns the accounts not nudged
    because the broker failed (their rows are left to the sweeper)."""
    accounts = sorted(set(account_ids))
    for index, account_id in enumerate(accounts):
        try:
            publish(PUSH_ACCOUNT, account_id, countdown=countdown)
        except Exception:  # noqa: BLE001 - any broker failure; the sweeper covers it
            log.warning("Could not publish a push for account %s; the sweeper will retry.", account_id)
            return accounts[index:]
    return []


def push_tickets(ticket_ids: list[int], *, countdown: float = 0) -> None:
    """Nudge the accounts of these tickets, noting when each ticket was announced
    (`enqueued_at`): the sweeper republishes a due row only once its announcement is old or
    missing. One message per account, however many tickets."""
    if not ticket_ids:
        return
    rows = Ticket.objects.filter(pk__in=ticket_ids)
    accounts: set[int] = set()
    announced_before: set[int] = set()
    for account_id, enqueued_at in rows.values_list("account_id", "enqueued_at"):
        accounts.add(account_id)
        if enqueued_at is not None:
            announced_before.add(account_id)
    announce_accounts(
        rows,
        "account_id",
        accounts,
        countdown=countdown,
        already_nudged=lambda accounts, now: left_to_runs(
            accounts, now=now, ticket_ids=ticket_ids, announced_before=announced_before
        ),
    )


def push_new_ticket(ticket_id: int, account_id: int) -> None:
    """`push_tickets` for a ticket just created: its account is known and no nudge announced
    it yet (`enqueued_at` empty), so neither needs reading back. Most creates of a busy account
    are covered by its live run: they return after the look, without building another query."""
    if left_to_runs({account_id}, now=timezone.now(), ticket_ids=[ticket_id], announced_before=set()):
        return
    announce_accounts(
        Ticket.objects.filter(pk=ticket_id),
        "account_id",
        {account_id},
        countdown=0,
        already_nudged=lambda accounts, now: set(),  # just looked
    )


def left_to_runs(
    account_ids: set[int], *, now: datetime, ticket_ids: list[int], announced_before: set[int]
) -> set[int]:
    """Accounts whose tickets a nudge still to run, or a run sending now, will claim anyway.
    Tickets left to a sending run are marked unannounced (`enqueued_at` empty), so the sweeper
    publishes any that run leaves behind at its next round; `announced_before` are the accounts
    with such a ticket announced earlier (no UPDATE when none is)."""
    sending, announced = accounts_covered(account_ids, now=now, excluding=ticket_ids)
    if sending & announced_before:
        Ticket.objects.filter(
            pk__in=ticket_ids, account_id__in=sending & announced_before, enqueued_at__isnull=False
        ).update(enqueued_at=None)
    return sending | announced


def accounts_covered(
    account_ids: set[int], *, now: datetime, excluding: list[int]
) -> tuple[set[int], set[int]]:
    """(Accounts whose batch run is sending now, the others with a ticket `tickets_announced`
    would find), `excluding` aside.

    Sending: rows `sending` under a live lease. A nudge for such an account would find that
    run and return at once (batch.AccountRun), and the run claims every due row again before
    it ends. A run that stops early (out of time) nudges its account again; one the breaker
    stopped leaves what it did not claim to the sweeper, which publishes a row no nudge
    announced (`enqueued_at` empty) at its next round."""
    sending, announced = covering_rows(account_ids, now=now, excluding=excluding)
    return sending, announced - sending


def covering_rows(account_ids: set[int], *, now: datetime, excluding: list[int]) -> tuple[set[int], set[int]]:
    """One query for (the accounts with a row `sending` under a live lease, those with a ticket
    a nudge announced moments ago that its run would claim now: pending, due, not settling).

    Every create asks it, so it is written here rather than by the ORM, which spent longer
    building it than the database spent running it (docs/benchmarks.md, "Create path"). The
    states come first so that both are looked up in the (account, state) index: inside the OR
    alone they left the database every ticket of the account to read. Names are the model's,
    quoted; values are parameters."""
    if not account_ids:
        return set(), set()
    ops = connection.ops
    column = {name: ops.quote_name(Ticket._meta.get_field(name).column) for name in COVERING_COLUMNS}
    moment = ops.adapt_datetimefield_value
    since, until = announcement_window(now)
    live_since = now - timedelta(seconds=settings.SYNC_LEASE)
    accounts, excluded = sorted(account_ids), list(excluding)
    sql = (
        f"SELECT DISTINCT {column['account']}, {column['sync_state']} "  # noqa: S608
        f"FROM {ops.quote_name(Ticket._meta.db_table)} "
        f"WHERE {column['account']} IN ({placeholders(accounts)}) AND {column['sync_state']} IN (%s, %s) "
        f"AND (({column['sync_state']} = %s AND {column['lease_renewed_at']} > %s) "
        f"OR ({column['sync_state']} = %s AND {column['enqueued_at']} > %s AND {column['enqueued_at']} <= %s "
        f"AND ({column['next_attempt_at']} IS NULL OR {column['next_attempt_at']} <= %s) "
        f"AND ({column['settle_until']} IS NULL OR {column['settle_until']} <= %s)"
        + (f" AND {column['id']} NOT IN ({placeholders(excluded)})" if excluded else "")
        + "))"
    )
    params = [
        *accounts,
        SyncState.SENDING,
        SyncState.PENDING,
        SyncState.SENDING,
        moment(live_since),
        SyncState.PENDING,
        moment(since),
        moment(until),
        moment(now),
        moment(now),
        *excluded,
    ]
    sending: set[int] = set()
    announced: set[int] = set()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for account_id, state in cursor.fetchall():
            (sending if state == SyncState.SENDING else announced).add(account_id)
    return sending, announced


COVERING_COLUMNS = (
    "id",
    "account",
    "sync_state",
    "lease_renewed_at",
    "enqueued_at",
    "next_attempt_at",
    "settle_until",
)


def placeholders(values: list) -> str:
    return ", ".join(["%s"] * len(values))


def push_replies(reply_ids: list[int], *, countdown: float = 0) -> None:
    """Nudge the accounts of these replies, announcing them as tickets are: a burst of replies
    publishes one nudge per account. A reply also rides a nudge announced for one of the
    account's tickets moments ago: that nudge's task sends the account's due replies right
    after its tickets (tasks.push_account)."""
    if not reply_ids:
        return
    announce(
        Reply.objects.filter(pk__in=reply_ids),
        "ticket__account_id",
        countdown=countdown,
        already_nudged=lambda accounts, now: (
            replies_announced(accounts, now=now, excluding=reply_ids) | tickets_announced(accounts, now=now)
        ),
    )


def announce(
    rows: QuerySet,
    account_path: str,
    *,
    countdown: float,
    already_nudged: Callable[[set[int], datetime], set[int]],
) -> None:
    """Publish a nudge for each account of `rows` (tickets or replies; `account_path` leads to
    the account) that no nudge still to run covers, and note on the rows it announces when
    (`enqueued_at`)."""
    announce_accounts(
        rows,
        account_path,
        set(rows.order_by().values_list(account_path, flat=True).distinct()),
        countdown=countdown,
        already_nudged=already_nudged,
    )


def announce_accounts(
    rows: QuerySet,
    account_path: str,
    accounts: set[int],
    *,
    countdown: float,
    already_nudged: Callable[[set[int], datetime], set[int]],
) -> None:
    """`announce`, the accounts of `rows` already known."""
    now = timezone.now()
    if not countdown:
        accounts -= already_nudged(accounts, now)
    if not accounts:
        return
    # Only a published nudge announces a row: one left to an earlier nudge keeps its old
    # `enqueued_at`, so it never makes a later publish look unnecessary, and the sweeper
    # still publishes it should that nudge be lost.
    announced = rows.filter(**{f"{account_path}__in": accounts})
    announced.update(enqueued_at=now + timedelta(seconds=countdown))
    missed = nudge_accounts(accounts, countdown=countdown)
    if missed:
        announced.filter(**{f"{account_path}__in": missed}).update(enqueued_at=None)


def announcement_window(now: datetime) -> tuple[datetime, datetime]:
    """When a nudge announced "moments ago" was published: in the last few seconds (one with a
    countdown still to run is not)."""
    return now - timedelta(seconds=min(10, settings.SYNC_REQUEUE_AFTER)), now


def announced_moments_ago(now: datetime) -> Q:
    since, until = announcement_window(now)
    return Q(enqueued_at__gt=since, enqueued_at__lte=until)


def tickets_announced(
    account_ids: set[int], *, now: datetime, excluding: list[int] | None = None
) -> set[int]:
    """Accounts with another ticket due now, announced moments ago and not yet claimed: the
    nudge that announced it is still to run, and its run claims every due row of the account,
    these included. (Should that nudge be lost, the sweeper publishes them all.)"""
    return covering_rows(account_ids, now=now, excluding=excluding or [])[1]


def replies_announced(account_ids: set[int], *, now: datetime, excluding: list[int]) -> set[int]:
    """Accounts with another reply the next run would claim (due, its ticket known remotely),
    announced moments ago and not yet claimed: as `tickets_announced`, for replies."""
    if not account_ids:
        return set()
    return set(
        Reply.objects.filter(
            announced_moments_ago(now),
            ticket__account_id__in=account_ids,
            sync_state=SyncState.PENDING,
            direction=Reply.Direction.OUTBOUND,
        )
        .exclude(ticket__remote_id="")
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .exclude(pk__in=excluding)
        .order_by()
        .values_list("ticket__account_id", flat=True)
        .distinct()
    )


def push_ticket_on_commit(ticket_id: int) -> None:
    transaction.on_commit(lambda: push_tickets([ticket_id]))


def push_new_ticket_on_commit(ticket_id: int, account_id: int) -> None:
    transaction.on_commit(lambda: push_new_ticket(ticket_id, account_id))


def pull_accounts(account_ids: list[int]) -> None:
    for account_id in account_ids:
        publish(PULL_ACCOUNT, account_id)


def run_bulk_job(job_id: int) -> None:
    publish(RUN_BULK_JOB, job_id)
