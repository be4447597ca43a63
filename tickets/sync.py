"""Pushing tickets to providers: claim, call, record (docs/architecture.md "Sync").

The database is the source of truth; the broker only wakes workers. A worker claims a row
with a guarded UPDATE committed before any HTTP, calls the provider, and records the outcome
fenced by the attempt number it claimed, so a second delivery of the same message, or a
worker that comes back after the sweeper gave its row away, changes nothing.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, DateTimeField, F, Q, Value, When
from django.utils import timezone

from console.crypto import CredentialsUnreadable
from providers.base import CREATE, UPDATE, RemoteRef
from providers.bounds import engine_setting
from providers.errors import (
    ProviderAuthError,
    ProviderConfigurationError,
    ProviderError,
    ProviderRateLimited,
    ProviderTransientError,
    ProviderValidationError,
)
from providers.http import SIGN_IN, Exchange
from providers.models import ProviderAccount
from tickets import limits, problems
from tickets.models import Attachment, SyncAttempt, SyncState, Ticket

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


@dataclass
class AttemptLog:
    """Collects the provider's exchanges of one push, written as SyncAttempt rows at the end."""

    exchanges: list[Exchange] = field(default_factory=list)

    def add(self, exchange: Exchange) -> None:
        self.exchanges.append(exchange)

    def rows(
        self, *, account_id: int, operation: str, outcome: str, message: str,
        ticket: Ticket | None = None,
    ) -> list[SyncAttempt]:
        common = {
            "ticket": ticket, "account_id": account_id, "operation": operation,
            "revision": ticket.revision if ticket else None,
        }
        if not self.exchanges:  # refused before anything was sent (configuration, keys)
            return [SyncAttempt(**common, started_at=timezone.now(), outcome=outcome, error=message)]
        rows = []
        for index, exchange in enumerate(self.exchanges):
            last = index == len(self.exchanges) - 1
            ok = exchange.status is not None and exchange.status < 300 and not exchange.error
            # A token call is recorded as signing in, whatever operation needed it — except in a
            # connection test, where signing in is part of what is being tested.
            signing_in = (
                {"operation": SyncAttempt.Operation.SIGN_IN}
                if exchange.purpose == SIGN_IN and operation != SyncAttempt.Operation.TEST else {}
            )
            rows.append(
                SyncAttempt(
                    **{**common, **signing_in},
                    started_at=exchange.started_at, duration_ms=exchange.duration_ms,
                    outcome=outcome if last else ("success" if ok else "failed"),
                    http_status=exchange.status, request_method=exchange.method,
                    request_url=exchange.url[:1000], request_headers=exchange.request_headers,
                    request_body=exchange.request_body, response_body=exchange.response_body,
                    error=message if last else exchange.error,
                )
            )
        return rows

    def save_for(self, ticket: Ticket, operation: str, decision: Decision) -> None:
        SyncAttempt.objects.bulk_create(
            self.rows(
                account_id=ticket.account_id, operation=operation, outcome=decision.outcome,
                message=decision.message, ticket=ticket,
            )
        )


# --- enqueueing ---------------------------------------------------------------------------
def enqueue_push(ticket_ids: list[int], *, countdown: float = 0) -> None:
    """Publish push messages. A failed publish is logged, not raised: the row stays pending
    and the sweeper publishes it again, so a broker outage delays work but loses none."""
    if not ticket_ids:
        return
    from tickets.tasks import push_ticket

    due = timezone.now() + timedelta(seconds=countdown)
    Ticket.objects.filter(pk__in=ticket_ids).update(enqueued_at=due)
    for ticket_id in ticket_ids:
        try:
            push_ticket.apply_async((ticket_id,), countdown=countdown or None)
        except Exception:  # noqa: BLE001 - any broker failure; the sweeper covers it
            log.warning("Could not publish push for ticket %s; the sweeper will retry.", ticket_id)
            unpublished = ticket_ids[ticket_ids.index(ticket_id):]
            Ticket.objects.filter(pk__in=unpublished).update(enqueued_at=None)
            return


def enqueue_push_on_commit(ticket_id: int) -> None:
    transaction.on_commit(lambda: enqueue_push([ticket_id]))


# --- the push -----------------------------------------------------------------------------
def due_after_settle(now=None):
    """`next_attempt_at` for a row made due at once (an edit, a retry, a release): now, or
    the end of its settle window when an unanswered update may still land."""
    now = now or timezone.now()
    return Case(When(settle_until__gt=now, then=F("settle_until")), default=Value(None),
                output_field=DateTimeField())


def claim(ticket_id: int) -> Ticket | None:
    """Take the row for this worker: pending (and due, and settled) -> sending. Committed at once."""
    now = timezone.now()
    claimed = (
        Ticket.objects.filter(pk=ticket_id, sync_state=SyncState.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .filter(Q(settle_until__isnull=True) | Q(settle_until__lte=now))
        .update(sync_state=SyncState.SENDING, attempts=F("attempts") + 1, sending_since=now)
    )
    if not claimed:
        return None
    return Ticket.objects.select_related("account").get(pk=ticket_id)


def push(ticket_id: int) -> str:
    """Send the ticket's current state: a create, or a full update. Returns the new state."""
    ticket = claim(ticket_id)
    if ticket is None:
        return "not-claimed"
    held_until = limits.admit(ticket.account, just_read=True)
    if held_until is not None:  # the account is paused: wait, without spending an attempt
        put_back(ticket, until=held_until)
        return "paused"
    operation = UPDATE if ticket.remote_id else CREATE
    attempt_log = AttemptLog()
    if operation == UPDATE and not ticket.account.provider_class.supports(UPDATE):
        # Changed while its create was in flight, at a provider that cannot update: nothing
        # can carry the change, so it is kept here, visibly, rather than "failed" or "synced".
        finish(ticket, operation=operation, ref=None, attempt_log=attempt_log,
               decision=Decision(SyncState.LOCAL_ONLY, SyncAttempt.Outcome.SUCCESS))
        return SyncState.LOCAL_ONLY
    ref: RemoteRef | None = None
    sent_status = ""
    try:
        provider = ticket.account.get_provider()
        provider.http.on_exchange = attempt_log.add
        provider.on_upload = Attachment.record_upload  # files uploaded ahead of a create
        limits.govern(provider)
        if not ticket.account.enabled:
            raise ProviderConfigurationError(problems.disabled_message(ticket.account))
        ref = provider.create(ticket) if operation == CREATE else provider.update(ticket)
        sent_status = remote_status_sent(provider, ticket)
        decision = Decision(SyncState.SYNCED, SyncAttempt.Outcome.SUCCESS)
    except limits.AccountBusy as busy:  # no rate-limit slot soon: the call was not sent
        put_back(ticket, until=busy.until)
        return "throttled"
    except Exception as exc:  # noqa: BLE001 - every failure is classified and recorded
        decision = decide(exc, ticket=ticket, operation=operation, sent=bool(attempt_log.exchanges))
    finish(
        ticket, operation=operation, decision=decision, ref=ref, attempt_log=attempt_log,
        sent_status=sent_status,
    )
    return decision.state


def put_back(ticket: Ticket, *, until) -> None:
    """Return a claimed row to pending until `until`, as if it had never been claimed."""
    released = Ticket.objects.filter(
        pk=ticket.pk, sync_state=SyncState.SENDING, attempts=ticket.attempts
    ).update(
        sync_state=SyncState.PENDING, attempts=F("attempts") - 1, sending_since=None,
        next_attempt_at=until, enqueued_at=None,
    )
    delay = max(0.0, (until - timezone.now()).total_seconds())
    if released and delay <= MAX_COUNTDOWN:
        enqueue_push([ticket.pk], countdown=delay)


def remote_status_sent(provider, ticket: Ticket) -> str:
    """The provider's status value for the ticket's status ('' when the map has none)."""
    try:
        return provider.remote_status_for(ticket.status)
    except ProviderConfigurationError:
        return ""


def decide(exc: Exception, *, ticket: Ticket, operation: str, sent: bool) -> Decision:
    """Map a failure to the state the ticket goes to (docs/architecture.md "Sync", Outcomes)."""
    account = ticket.account
    provider_class = account.provider_class
    if isinstance(exc, (ProviderConfigurationError, CredentialsUnreadable)):
        message = str(exc) if not account.enabled else problems.account_message(exc, account=account)
        return Decision(SyncState.FAILED, SyncAttempt.Outcome.FAILED, message, account_problem=True)
    if isinstance(exc, ProviderTransientError) and exc.may_have_applied and operation == CREATE:
        resend_safe = provider_class.create_is_idempotent or bool(
            engine_setting(account.settings, "retry_unknown_creates")
        )
        if not resend_safe:
            return Decision(
                SyncState.NEEDS_ATTENTION,
                SyncAttempt.Outcome.UNKNOWN,
                f"{exc.message} The ticket may now exist in {provider_class.label}. Check there, "
                "then retry the create, link the existing remote id, or cancel.",
                counts_against_account=True,
            )
    if isinstance(exc, (ProviderRateLimited, ProviderTransientError)):
        if ticket.attempts >= settings.SYNC_MAX_ATTEMPTS:
            return Decision(
                SyncState.FAILED,
                SyncAttempt.Outcome.FAILED,
                f"Gave up after {ticket.attempts} attempts: {exc.message}",
                counts_against_account=True,
            )
        retry_in = backoff(ticket.attempts, getattr(exc, "retry_after", None))
        settle = operation == UPDATE and answer_lost(exc)
        if settle:  # changes to one ticket apply in order: let the unanswered update land first
            retry_in = max(retry_in, settings.SYNC_UPDATE_SETTLE)
        return Decision(
            SyncState.PENDING, SyncAttempt.Outcome.RETRY, exc.message, retry_in=retry_in,
            counts_against_account=True, settle=settle,
        )
    if isinstance(exc, ProviderError):
        # Only auth says the account is unhealthy; a refused field or an unknown id is this
        # ticket's problem and must not pause the account for everyone.
        if isinstance(exc, ProviderAuthError):
            return Decision(SyncState.FAILED, SyncAttempt.Outcome.FAILED,
                            problems.account_message(exc, account=account),
                            counts_against_account=True, account_problem=True)
        if isinstance(exc, ProviderValidationError):
            return Decision(SyncState.FAILED, SyncAttempt.Outcome.FAILED,
                            problems.field_message(exc, account=account))
        return Decision(SyncState.FAILED, SyncAttempt.Outcome.FAILED, exc.message)
    log.exception("Unexpected error while pushing ticket %s", ticket.pk)
    if sent and operation == CREATE:
        return Decision(
            SyncState.NEEDS_ATTENTION,
            SyncAttempt.Outcome.UNKNOWN,
            f"Internal error after the create was sent ({type(exc).__name__}); "
            "check the provider before retrying.",
        )
    return Decision(
        SyncState.FAILED, SyncAttempt.Outcome.FAILED, f"Internal error ({type(exc).__name__})."
    )


def answer_lost(exc: Exception) -> bool:
    """The request reached the provider and no answer came back, so the provider may still be
    working on it: a read timeout, a dropped connection, a gateway's 502/504. (A 500 or an
    unreadable 200 is an answer: that request is over.)"""
    return bool(getattr(exc, "may_have_applied", False)) and getattr(exc, "http_status", None) in (
        None, 502, 504,
    )


def backoff(attempts: int, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter; the provider's Retry-After wins when it is given."""
    if retry_after is not None:
        return max(1.0, retry_after)
    ceiling = min(settings.SYNC_BACKOFF_CAP, settings.SYNC_BACKOFF_BASE * 2 ** max(0, attempts - 1))
    return random.uniform(ceiling / 2, ceiling)


def finish(
    ticket: Ticket, *, operation: str, decision: Decision, ref: RemoteRef | None,
    attempt_log: AttemptLog, sent_status: str = "",
) -> None:
    """Record the outcome, fenced by the claimed attempt: a stale worker writes nothing.

    Guarded UPDATEs rather than lock-read-save: one statement in the common case, and only
    the sync columns are written, so an edit saved meanwhile is never overwritten.
    """
    now = timezone.now()
    fields = {
        "sending_since": None, "last_error": decision.message, "updated_at": now,
        "account_problem": decision.account_problem,
        "settle_until": now + timedelta(seconds=decision.retry_in or 0) if decision.settle else None,
    }
    if ref is not None:
        fields["remote_id"] = ref.remote_id
        for name in ("remote_number", "remote_url", "remote_status"):
            if getattr(ref, name):
                fields[name] = getattr(ref, name)
    requeue_in: float | None = None
    with transaction.atomic():
        fenced = Ticket.objects.filter(pk=ticket.pk, sync_state=SyncState.SENDING, attempts=ticket.attempts)
        if decision.state == SyncState.SYNCED:
            # What both sides now hold: the baseline pull compares remote changes against.
            remote_status = (ref.remote_status if ref else "") or sent_status or ticket.remote_status
            fields.update(
                remote_status=remote_status, synced_revision=ticket.revision, last_synced_at=now,
                synced_fields={"status": ticket.status, "remote_status": remote_status},
                attempts=0, next_attempt_at=None,
            )
            # Fields the provider cannot take (ticket.local_only_fields) keep it "kept here only".
            in_step = SyncState.LOCAL_ONLY if ticket.local_only_fields else SyncState.SYNCED
            applied = fenced.filter(revision=ticket.revision).update(sync_state=in_step, **fields)
            if not applied:  # edited while we were sending: send the newer revision next
                applied = fenced.filter(revision__gt=ticket.revision).update(
                    sync_state=SyncState.PENDING, **fields
                )
                requeue_in = 0
        elif decision.state == SyncState.PENDING:
            retry_in = decision.retry_in or 0
            applied = fenced.update(
                sync_state=SyncState.PENDING, next_attempt_at=now + timedelta(seconds=retry_in), **fields
            )
            if retry_in <= MAX_COUNTDOWN:
                requeue_in = retry_in
        elif decision.state == SyncState.LOCAL_ONLY:
            applied = fenced.update(sync_state=decision.state, next_attempt_at=None, attempts=0, **fields)
        else:
            applied = fenced.update(sync_state=decision.state, next_attempt_at=None, **fields)
        if decision.state != SyncState.LOCAL_ONLY:  # no call was made for a change kept here
            attempt_log.save_for(ticket, operation, decision)
        if not applied:
            log.warning("Ticket %s was taken over while this worker sent it; "
                        "its outcome is recorded but not applied.", ticket.pk)
            return
        record_account_health(ticket.account, decision)
        if requeue_in is not None:
            delay = requeue_in
            transaction.on_commit(lambda: enqueue_push([ticket.pk], countdown=delay))
        if decision.state == SyncState.SYNCED:
            from tickets import replies  # replies waiting for the remote id may go now

            transaction.on_commit(lambda: replies.enqueue_waiting(ticket.pk))


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
def sweep(*, limit: int = 1000) -> dict[str, int]:
    """Publish rows that are due but unannounced, and recover rows a dead worker left."""
    now = timezone.now()
    due_ids = list(
        Ticket.objects.filter(sync_state=SyncState.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .filter(
            Q(enqueued_at__isnull=True)
            | Q(enqueued_at__lte=now - timedelta(seconds=settings.SYNC_REQUEUE_AFTER))
        )
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    enqueue_push(due_ids)
    deadline = now - timedelta(seconds=settings.SYNC_SENDING_DEADLINE)
    abandoned = 0
    for ticket in Ticket.objects.select_related("account").filter(
        sync_state=SyncState.SENDING, sending_since__lt=deadline
    )[:limit]:
        abandoned += recover_abandoned(ticket)
    from tickets import replies

    reply_counts = replies.sweep(limit=limit)
    return {
        "published": len(due_ids), "recovered": abandoned,
        "replies_published": reply_counts["published"], "replies_recovered": reply_counts["recovered"],
    }


def recover_abandoned(ticket: Ticket) -> int:
    """A row stuck in `sending`: its worker died. An update is simply sent again; a create
    may have reached the provider, so unless a resend is safe a person decides."""
    resend_safe = bool(ticket.remote_id) or ticket.account.provider_class.create_is_idempotent or (
        bool(engine_setting(ticket.account.settings, "retry_unknown_creates"))
    )
    fields = {"sending_since": None, "next_attempt_at": None, "enqueued_at": None}
    if resend_safe:
        fields["sync_state"] = SyncState.PENDING
    else:
        fields["sync_state"] = SyncState.NEEDS_ATTENTION
        fields["last_error"] = (
            "The worker stopped while creating this ticket; it may now exist in "
            f"{ticket.account.provider_class.label}. Check there, then retry, link the "
            "remote id, or cancel."
        )
    return Ticket.objects.filter(
        pk=ticket.pk, sync_state=SyncState.SENDING, attempts=ticket.attempts
    ).update(**fields)
