"""The outbound pipeline: decide, fenced finish, put back, publish, sweep (docs/architecture.md
"Sync").

Written once for everything the console sends: a ticket (create or update, tickets/sync.py)
and a reply (tickets/replies.py). Each is an `OutboundKind`, which says what differs — the
model, the remote call, what success writes — and nothing else. An account's batch run
(tickets/batch.py) claims the rows and makes the calls; what an outcome means and how it is
written is here.

The database is the source of truth; the broker only wakes workers. A worker claims rows
with a guarded UPDATE committed before any HTTP, calls the provider, and records each outcome
fenced by the attempt number it claimed, so a second delivery of the same message, or a
worker that comes back after the sweeper gave its row away, changes nothing.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django import db
from django.conf import settings
from django.db import models, transaction
from django.db.models import F
from django.utils import timezone

from providers.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderTransientError,
)
from providers.models import ProviderAccount
from tickets import problems
from tickets.attempts import AttemptLog
from tickets.models import SyncAttempt, SyncState, Ticket
from tickets.statements import insert_rows, write_fenced

log = logging.getLogger(__name__)
# Waits up to this long are handed to the broker as a countdown; longer ones are left to
# the sweeper, which publishes rows whose next_attempt_at has come.
MAX_COUNTDOWN = 300
#: The most rows one fenced UPDATE of a group writes (keeps its parameters well under
#: SQLite's limit whatever the columns).
GROUP_ROWS = 40


@dataclass
class Decision:
    """What a push ends in."""

    state: str
    outcome: str
    message: str = ""
    retry_in: float | None = None
    counts_against_account: bool = False
    #: An update went unanswered: hold the ticket for `retry_in` whatever else asks.
    settle: bool = False
    #: The account is at fault (credentials, configuration, disabled): a provider admin must act.
    account_problem: bool = False


@dataclass
class Outcome:
    """A claimed row whose call ended (or was never needed): what its finish records."""

    row: Any
    operation: str
    decision: Decision
    attempt_log: AttemptLog = field(default_factory=AttemptLog)
    sent: Any = None


@dataclass
class Recorded:
    """What a group finish applied."""

    #: Rows whose outcome was written (the others were taken over meanwhile).
    applied: set[int] = field(default_factory=set)
    #: Applied rows to publish again, and when each is due.
    due_again: dict[int, datetime] = field(default_factory=dict)


class OutboundKind:
    """What differs between pushing one kind of row and another; the pipeline does the rest.

    `sent` below is whatever `call` returned (None when nothing came back to keep)."""

    model: type[models.Model]
    noun: str  # in log lines: "ticket", "reply"
    related: str  # select_related path to the account, read with the claim
    #: Columns a put-back row gets besides pending/attempts/next_attempt_at.
    put_back_fields: dict[str, Any] = {}
    #: A column every local edit moves on (a ticket's revision), or None. A success is then
    #: written only at the value sent; a row edited meanwhile goes back to pending with the
    #: success's columns (remote id, baseline) so the newer revision is sent next.
    revision_field: str | None = None
    #: Columns nothing but the finish writes while a row is `sending` (the remote ref): a
    #: group's UPDATE leaves out a row's value that is the one it held when claimed.
    finish_only_fields: frozenset[str] = frozenset()

    # --- claim and call
    def claimable(self, rows: models.QuerySet, now: datetime) -> models.QuerySet:
        return rows

    def account_of(self, row) -> ProviderAccount:
        raise NotImplementedError

    def ticket_of(self, row) -> Ticket:
        raise NotImplementedError

    def operation(self, row) -> str:
        raise NotImplementedError

    def kept_here(self, row, operation: str) -> Decision | None:
        """A decision reached without calling the provider, or None to call it."""
        return None

    def disabled_message(self, account: ProviderAccount) -> str:
        raise NotImplementedError

    def call(self, provider, row, operation: str) -> Any:
        raise NotImplementedError

    def publish(self, ids: list[int], *, countdown: float = 0) -> None:
        raise NotImplementedError

    # --- decide
    def account_problem_message(self, exc: Exception, account: ProviderAccount) -> str:
        return problems.account_message(exc, account=account)

    def unknown_outcome_message(self, row, operation: str, exc: ProviderTransientError) -> str | None:
        """The call may have been applied and no answer came: the message that holds the row
        for a person, or None when sending it again is safe."""
        raise NotImplementedError

    def settles(self, operation: str, exc: Exception) -> bool:
        """A retry must wait for the unanswered call to land first (the settle window)."""
        return False

    def refusal_message(self, exc: ProviderError, account: ProviderAccount) -> str:
        return exc.message

    def internal_error(self, exc: Exception, *, operation: str, sent: bool) -> Decision:
        raise NotImplementedError

    # --- finish
    def finish_fields(self, row, decision: Decision, sent: Any, now: datetime) -> dict[str, Any]:
        return {}

    def success_fields(self, row, fields: dict, sent: Any, now: datetime) -> dict[str, Any]:
        """The columns a success writes, `sync_state` included, `fields` among them."""
        raise NotImplementedError

    # --- sweep
    def due_unannounced(self, now: datetime) -> models.QuerySet:
        """Ids of pending rows that are due but whose message may be lost, in sweep order."""
        raise NotImplementedError

    def recover_stuck(self, stuck: models.QuerySet, *, limit: int) -> int:
        """Rows left `sending` past the deadline by a dead worker; returns how many were recovered."""
        raise NotImplementedError


# --- put back -----------------------------------------------------------------------------
def put_back(kind: OutboundKind, row, *, until: datetime) -> bool:
    """Return a claimed row to pending until `until`, as if it had never been claimed.
    Returns whether it was (fenced: a row taken over meanwhile stays with its new holder). The
    nudge is the caller's: a batch run publishes once for all its rows (`publish_due`)."""
    released = kind.model.objects.filter(
        pk=row.pk, sync_state=SyncState.SENDING, attempts=row.attempts
    ).update(
        sync_state=SyncState.PENDING,
        attempts=F("attempts") - 1,
        lease_renewed_at=None,
        next_attempt_at=until,
        **kind.put_back_fields,
    )
    return bool(released)


def publish_due(kind: OutboundKind, due: dict[int, datetime]) -> None:
    """Publish rows again for when they are due: one publish (one nudge per account) per whole
    second of countdown, rounded up so every row is due when its nudge runs. Rows due later
    than MAX_COUNTDOWN are left to the sweeper."""
    now = timezone.now()
    by_countdown: dict[int, list[int]] = {}
    for pk, when in due.items():
        countdown = math.ceil(max(0.0, (when - now).total_seconds()))
        if countdown <= MAX_COUNTDOWN:
            by_countdown.setdefault(countdown, []).append(pk)
    for countdown, ids in sorted(by_countdown.items()):
        kind.publish(sorted(ids), countdown=countdown)


# --- decide -------------------------------------------------------------------------------
def decide(kind: OutboundKind, exc: Exception, *, row, operation: str, sent: bool) -> Decision:
    """Map a failure to the state the row goes to (docs/architecture.md "Sync", Outcomes)."""
    account = kind.account_of(row)
    if problems.is_account_level(exc):  # only a provider admin can fix it: they are told
        return Decision(
            SyncState.FAILED,
            SyncAttempt.Outcome.FAILED,
            kind.account_problem_message(exc, account),
            counts_against_account=isinstance(exc, ProviderAuthError),
            account_problem=True,
        )
    if isinstance(exc, ProviderTransientError) and exc.may_have_applied:
        held = kind.unknown_outcome_message(row, operation, exc)
        if held is not None:
            return Decision(
                SyncState.NEEDS_ATTENTION, SyncAttempt.Outcome.UNKNOWN, held, counts_against_account=True
            )
    if isinstance(exc, (ProviderRateLimited, ProviderTransientError)):
        if row.attempts >= settings.SYNC_MAX_ATTEMPTS:
            return Decision(
                SyncState.FAILED,
                SyncAttempt.Outcome.FAILED,
                f"Gave up after {row.attempts} attempts: {exc.message}",
                counts_against_account=True,
            )
        retry_in = backoff(row.attempts, getattr(exc, "retry_after", None))
        settle = kind.settles(operation, exc)
        if settle:  # changes to one row apply in order: let the unanswered call land first
            retry_in = max(retry_in, settings.SYNC_UPDATE_SETTLE)
        return Decision(
            SyncState.PENDING,
            SyncAttempt.Outcome.RETRY,
            exc.message,
            retry_in=retry_in,
            counts_against_account=True,
            settle=settle,
        )
    if isinstance(exc, ProviderError):
        # A refused field or an unknown id is this row's problem: it must not pause the
        # account for everyone.
        return Decision(SyncState.FAILED, SyncAttempt.Outcome.FAILED, kind.refusal_message(exc, account))
    if isinstance(exc, DATABASE_TROUBLE) and not sent:  # once sent, the outcome is unknown: below
        return database_trouble(kind, exc, row=row)
    log.exception("Unexpected error while pushing %s %s", kind.noun, row.pk)
    return kind.internal_error(exc, operation=operation, sent=sent)


#: The console's own database failing under a call (the rate-limit slot, a shared token, an
#: upload read it): refused or dropped connections, too many clients, a deadlock. Not the row's
#: fault nor the provider's: the row is tried again later, as after a transient provider error.
DATABASE_TROUBLE = (db.OperationalError, db.InterfaceError)


def database_trouble(kind: OutboundKind, exc: Exception, *, row) -> Decision:
    """A call the console's database kept from being made: back to pending with backoff, up to
    SYNC_MAX_ATTEMPTS. Only the exception's class goes into the message (a database error can
    name hosts and users); the log has it all."""
    log.warning("Database error while pushing %s %s; it will be retried.", kind.noun, row.pk, exc_info=True)
    cause = f"The console's database failed during the call ({type(exc).__name__})"
    if row.attempts >= settings.SYNC_MAX_ATTEMPTS:
        return Decision(
            SyncState.FAILED,
            SyncAttempt.Outcome.FAILED,
            f"Gave up after {row.attempts} attempts: {cause}. The console's operator should check "
            "its database, then retry.",
        )
    return Decision(
        SyncState.PENDING,
        SyncAttempt.Outcome.RETRY,
        f"{cause}; it will be tried again.",
        retry_in=backoff(row.attempts),
    )


def answer_lost(exc: Exception) -> bool:
    """The request reached the provider and no answer came back, so the provider may still be
    working on it: a read timeout, a dropped connection, a gateway's 502/504. (A 500 or an
    unreadable 200 is an answer: that request is over.)"""
    return bool(getattr(exc, "may_have_applied", False)) and getattr(exc, "http_status", None) in (
        None,
        502,
        504,
    )


def backoff(attempts: int, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter; the provider's Retry-After wins when it is given."""
    if retry_after is not None:
        return max(1.0, retry_after)
    ceiling = min(settings.SYNC_BACKOFF_CAP, settings.SYNC_BACKOFF_BASE * 2 ** max(0, attempts - 1))
    return random.uniform(ceiling / 2, ceiling)


# --- finish -------------------------------------------------------------------------------
def finish_group(kind: OutboundKind, outcomes: list[Outcome]) -> Recorded:
    """Record the outcomes, each fenced by the attempt its row was claimed at: a row taken
    over meanwhile (attempts moved, or no longer `sending`) is not written.

    One UPDATE per outcome state for the whole group (columns that differ per row are a CASE
    on the pk), its WHERE the rows' own fences OR-ed together; RETURNING says which rows it
    wrote, so what follows (the account problem, nudges, the log line) is exactly per applied
    row. Only the sync columns are written, so an edit saved meanwhile is never overwritten; a
    success is written only at the revision sent (`OutboundKind.revision_field`). SyncAttempt
    rows of the whole group: one bulk_create.

    The caller is an account's batch run (tickets/batch.py): it feeds the breaker once for the
    group, publishes the rows due again once when it ends (`Recorded.due_again`), and sends
    the replies that waited for a ticket's create in the same task, after the tickets.
    """
    now = timezone.now()
    by_state: dict[str, list[tuple[Outcome, dict]]] = {}
    for outcome in outcomes:
        by_state.setdefault(outcome.decision.state, []).append((outcome, outcome_values(kind, outcome, now)))
    recorded = Recorded()
    with transaction.atomic():
        for state, writes in by_state.items():
            for start in range(0, len(writes), GROUP_ROWS):
                record_writes(kind, state, writes[start : start + GROUP_ROWS], recorded)
        insert_rows(
            SyncAttempt,
            [
                attempt
                for outcome in outcomes
                if outcome.decision.state != SyncState.LOCAL_ONLY  # no call was made for a change kept here
                for attempt in outcome.attempt_log.rows(
                    account_id=kind.ticket_of(outcome.row).account_id,
                    operation=outcome.operation,
                    outcome=outcome.decision.outcome,
                    message=outcome.decision.message,
                    ticket=kind.ticket_of(outcome.row),
                )
            ],
        )
        for outcome in outcomes:
            row, decision = outcome.row, outcome.decision
            if row.pk not in recorded.applied:
                log.warning(
                    "%s %s was taken over while this worker sent it; its outcome is recorded, not applied.",
                    kind.noun.capitalize(),
                    row.pk,
                )
                continue
            if decision.account_problem:  # only a provider admin can fix it: they are told, once
                problems.report(kind.account_of(row), decision.message)
    return recorded


def outcome_values(kind: OutboundKind, outcome: Outcome, now: datetime) -> dict[str, Any]:
    """The columns one outcome writes, `sync_state` included."""
    row, decision = outcome.row, outcome.decision
    fields = {
        "lease_renewed_at": None,
        "last_error": decision.message,
        **kind.finish_fields(row, decision, outcome.sent, now),
    }
    if decision.state == SyncState.SYNCED:
        return kind.success_fields(row, fields, outcome.sent, now)
    if decision.state == SyncState.PENDING:
        retry_at = now + timedelta(seconds=decision.retry_in or 0)
        return {**fields, "sync_state": SyncState.PENDING, "next_attempt_at": retry_at}
    return {**fields, "sync_state": decision.state, "next_attempt_at": None}


def record_writes(
    kind: OutboundKind, state: str, writes: list[tuple[Outcome, dict]], recorded: Recorded
) -> None:
    """Write outcomes of one state (one statement; a success two when rows were edited meanwhile)."""
    guarded = state == SyncState.SYNCED and kind.revision_field is not None
    applied = write_fenced(kind, writes, revision="exact" if guarded else None)
    recorded.applied |= applied
    if state == SyncState.PENDING:
        for outcome, values in writes:
            if outcome.row.pk in applied:
                recorded.due_again[outcome.row.pk] = values["next_attempt_at"]
    if not guarded:
        return
    # Edited while we were sending: the success's columns, pending, and the newer revision next.
    # (A row written just now is no longer `sending`, so this statement cannot touch it.)
    edited = [(outcome, {**values, "sync_state": SyncState.PENDING}) for outcome, values in writes]
    edited = [(outcome, values) for outcome, values in edited if outcome.row.pk not in applied]
    if edited:
        requeued = write_fenced(kind, edited, revision="gt")
        recorded.applied |= requeued
        recorded.due_again.update(dict.fromkeys(requeued, timezone.now()))


# --- the sweeper --------------------------------------------------------------------------
def sweep(kind: OutboundKind, *, limit: int = 1000) -> dict[str, int]:
    """Publish rows that are due but unannounced, and recover rows a dead worker left."""
    now = timezone.now()
    due_ids = list(kind.due_unannounced(now)[:limit])
    kind.publish(due_ids)
    # `lease_renewed_at` is renewed by the worker while its call is in flight (tickets/batch.py):
    # a row not renewed for a whole lease belongs to a dead worker.
    lease_expired = now - timedelta(seconds=settings.SYNC_LEASE)
    stuck = kind.model.objects.filter(sync_state=SyncState.SENDING, lease_renewed_at__lt=lease_expired)
    return {"published": len(due_ids), "recovered": kind.recover_stuck(stuck, limit=limit)}
