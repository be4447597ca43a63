"""The outbound pipeline: claim, call, decide, fenced finish, sweep (docs/architecture.md "Sync").

Written once for everything the console sends: a ticket (create or update, tickets/sync.py)
and a reply (tickets/replies.py). Each is an `OutboundKind`, which says what differs — the
model, the remote call, what success writes, what comes after — and nothing else.

The database is the source of truth; the broker only wakes workers. A worker claims a row
with a guarded UPDATE committed before any HTTP, calls the provider, and records the outcome
fenced by the attempt number it claimed, so a second delivery of the same message, or a
worker that comes back after the sweeper gave its row away, changes nothing.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.db.models import F, Q
from django.utils import timezone

from providers.errors import (
    ProviderAuthError,
    ProviderConfigurationError,
    ProviderError,
    ProviderRateLimited,
    ProviderTransientError,
)
from providers.models import ProviderAccount
from tickets import limits, problems
from tickets.attempts import AttemptLog
from tickets.models import SyncAttempt, SyncState, Ticket

log = logging.getLogger(__name__)
# Waits up to this long are handed to the broker as a countdown; longer ones are left to
# the sweeper, which publishes rows whose next_attempt_at has come.
MAX_COUNTDOWN = 300


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


class OutboundKind:
    """What differs between pushing one kind of row and another; the pipeline does the rest.

    `sent` below is whatever `call` returned (None when nothing came back to keep)."""

    model: type[models.Model]
    noun: str  # in log lines: "ticket", "reply"
    related: str  # select_related path to the account, read with the claim
    #: The claim read the account row a moment ago: the breaker need not read it again.
    admit_just_read = False
    #: Columns a put-back row gets besides pending/attempts/next_attempt_at.
    put_back_fields: dict[str, Any] = {}

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

    # --- finish and after
    def finish_fields(self, row, decision: Decision, sent: Any, now: datetime) -> dict[str, Any]:
        return {}

    def write_success(
        self, fenced: models.QuerySet, row, fields: dict, sent: Any, now: datetime
    ) -> tuple[int, float | None]:
        """Apply a success; returns (rows updated, countdown to publish again or None)."""
        raise NotImplementedError

    def after_success(self, row) -> None:
        """Run after the commit of an applied success."""

    # --- sweep
    def due_unannounced(self, now: datetime) -> models.QuerySet:
        """Ids of pending rows that are due but whose message may be lost, in sweep order."""
        raise NotImplementedError

    def recover_stuck(self, stuck: models.QuerySet, *, limit: int) -> int:
        """Rows left `sending` past the deadline by a dead worker; returns how many were recovered."""
        raise NotImplementedError


# --- the push -----------------------------------------------------------------------------
def claim(kind: OutboundKind, pk: int):
    """Take the row for this worker: pending (and due) -> sending, attempts + 1. Committed at once."""
    now = timezone.now()
    rows = kind.model.objects.filter(pk=pk, sync_state=SyncState.PENDING)
    claimed = (
        kind.claimable(rows, now)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .update(sync_state=SyncState.SENDING, attempts=F("attempts") + 1, sending_since=now)
    )
    if not claimed:
        return None
    return kind.model.objects.select_related(kind.related).get(pk=pk)


def push(kind: OutboundKind, pk: int) -> str:
    """Claim the row, make the remote call, record the outcome. Returns the new state."""
    row = claim(kind, pk)
    if row is None:
        return "not-claimed"
    account = kind.account_of(row)
    held_until = limits.admit(account, just_read=kind.admit_just_read)
    if held_until is not None:  # the account is paused: wait, without spending an attempt
        put_back(kind, row, until=held_until)
        return "paused"
    operation = kind.operation(row)
    attempt_log = AttemptLog()
    kept = kind.kept_here(row, operation)
    if kept is not None:
        finish(kind, row, operation=operation, decision=kept, attempt_log=attempt_log)
        return kept.state
    sent = None
    try:
        provider = account.get_provider()
        provider.http.on_exchange = attempt_log.add
        limits.govern(provider)
        if not account.enabled:
            raise ProviderConfigurationError(kind.disabled_message(account))
        sent = kind.call(provider, row, operation)
        decision = Decision(SyncState.SYNCED, SyncAttempt.Outcome.SUCCESS)
    except limits.AccountBusy as busy:  # no rate-limit slot soon: the call was not sent
        put_back(kind, row, until=busy.until)
        return "throttled"
    except Exception as exc:  # noqa: BLE001 - every failure is classified and recorded
        decision = decide(kind, exc, row=row, operation=operation, sent=bool(attempt_log.exchanges))
    finish(kind, row, operation=operation, decision=decision, attempt_log=attempt_log, sent=sent)
    return decision.state


def put_back(kind: OutboundKind, row, *, until: datetime) -> None:
    """Return a claimed row to pending until `until`, as if it had never been claimed."""
    released = kind.model.objects.filter(
        pk=row.pk, sync_state=SyncState.SENDING, attempts=row.attempts
    ).update(
        sync_state=SyncState.PENDING,
        attempts=F("attempts") - 1,
        sending_since=None,
        next_attempt_at=until,
        **kind.put_back_fields,
    )
    delay = max(0.0, (until - timezone.now()).total_seconds())
    if released and delay <= MAX_COUNTDOWN:
        kind.publish([row.pk], countdown=delay)


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
    log.exception("Unexpected error while pushing %s %s", kind.noun, row.pk)
    return kind.internal_error(exc, operation=operation, sent=sent)


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
def finish(
    kind: OutboundKind,
    row,
    *,
    operation: str,
    decision: Decision,
    attempt_log: AttemptLog,
    sent: Any = None,
    in_run: bool = False,
) -> bool:
    """Record the outcome, fenced by the claimed attempt: a stale worker writes nothing.
    Returns whether it was applied.

    Guarded UPDATEs rather than lock-read-save: one statement in the common case, and only
    the sync columns are written, so an edit saved meanwhile is never overwritten.

    `in_run`: an account's batch run (tickets/batch.py) records the row; it feeds the breaker
    once for its outcomes together and sends the replies that wait for a ticket itself.
    """
    now = timezone.now()
    fields = {
        "sending_since": None,
        "last_error": decision.message,
        **kind.finish_fields(row, decision, sent, now),
    }
    requeue_in: float | None = None
    with transaction.atomic():
        fenced = kind.model.objects.filter(pk=row.pk, sync_state=SyncState.SENDING, attempts=row.attempts)
        if decision.state == SyncState.SYNCED:
            applied, requeue_in = kind.write_success(fenced, row, fields, sent, now)
        elif decision.state == SyncState.PENDING:
            retry_in = decision.retry_in or 0
            applied = fenced.update(
                sync_state=SyncState.PENDING, next_attempt_at=now + timedelta(seconds=retry_in), **fields
            )
            if retry_in <= MAX_COUNTDOWN:
                requeue_in = retry_in
        else:
            applied = fenced.update(sync_state=decision.state, next_attempt_at=None, **fields)
        if decision.state != SyncState.LOCAL_ONLY:  # no call was made for a change kept here
            attempt_log.save(
                ticket=kind.ticket_of(row),
                operation=operation,
                outcome=decision.outcome,
                message=decision.message,
            )
        if not applied:
            log.warning(
                "%s %s was taken over while this worker sent it; its outcome is recorded but not applied.",
                kind.noun.capitalize(),
                row.pk,
            )
            return False
        if in_run:
            if decision.account_problem:
                problems.report(kind.account_of(row), decision.message)
        else:
            record_account_health(kind.account_of(row), decision)
        if requeue_in is not None:
            delay = requeue_in
            transaction.on_commit(lambda: kind.publish([row.pk], countdown=delay))
        if decision.state == SyncState.SYNCED and not in_run:
            transaction.on_commit(lambda: kind.after_success(row))
    return True


def record_account_health(account: ProviderAccount, decision: Decision) -> None:
    """Feed the account's breaker: success closes it, unhealthy failures count towards a trip;
    a problem only a provider admin can fix is reported to them (once per incident)."""
    if decision.state == SyncState.SYNCED:
        limits.record_success(account, just_read=True)
    elif decision.counts_against_account:
        limits.record_failure(account, decision.message)
    if decision.account_problem:
        problems.report(account, decision.message)


# --- the sweeper --------------------------------------------------------------------------
def sweep(kind: OutboundKind, *, limit: int = 1000) -> dict[str, int]:
    """Publish rows that are due but unannounced, and recover rows a dead worker left."""
    now = timezone.now()
    due_ids = list(kind.due_unannounced(now)[:limit])
    kind.publish(due_ids)
    # `sending_since` is renewed by the worker while its call is in flight (tickets/batch.py):
    # a row not renewed for a whole lease belongs to a dead worker.
    lease_expired = now - timedelta(seconds=settings.SYNC_LEASE)
    stuck = kind.model.objects.filter(sync_state=SyncState.SENDING, sending_since__lt=lease_expired)
    return {"published": len(due_ids), "recovered": kind.recover_stuck(stuck, limit=limit)}
