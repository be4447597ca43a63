"""Pushing replies: the ticket push's claim -> call -> fenced finish, for Reply rows.

A reply goes only once its ticket exists remotely (it has a remote_id); until then it waits
as pending and is published when the ticket's create succeeds. Posting a reply is not
idempotent, so an answer lost after sending holds the reply for a person, as a create is held.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from providers.base import REPLY
from providers.errors import (
    ProviderAuthError,
    ProviderConfigurationError,
    ProviderError,
    ProviderRateLimited,
    ProviderTransientError,
)
from tickets import limits, problems
from tickets.models import Reply, SyncAttempt, SyncState
from tickets.sync import MAX_COUNTDOWN, AttemptLog, Decision, backoff

log = logging.getLogger(__name__)


def enqueue(reply_ids: list[int], *, countdown: float = 0) -> None:
    """Publish reply pushes; a failed publish is left to the sweeper."""
    from tickets.tasks import push_reply

    for reply_id in reply_ids:
        try:
            push_reply.apply_async((reply_id,), countdown=countdown or None)
        except Exception:  # noqa: BLE001 - any broker failure; the sweeper covers it
            log.warning("Could not publish push for reply %s; the sweeper will retry.", reply_id)
            return


def enqueue_waiting(ticket_id: int) -> None:
    """The ticket now exists remotely: publish its replies that were waiting for that."""
    enqueue(list(
        Reply.objects.filter(ticket_id=ticket_id, sync_state=SyncState.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=timezone.now()))
        .values_list("pk", flat=True)
    ))


def claim(reply_id: int) -> Reply | None:
    """pending (due, ticket created remotely) -> sending, committed before any HTTP."""
    now = timezone.now()
    claimed = (
        # Only the console's own replies are ever sent: one read back from the provider is not.
        Reply.objects.filter(pk=reply_id, sync_state=SyncState.PENDING, direction=Reply.Direction.OUTBOUND)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .exclude(ticket__remote_id="")
        .update(sync_state=SyncState.SENDING, attempts=F("attempts") + 1, sending_since=now)
    )
    if not claimed:
        return None
    return Reply.objects.select_related("ticket__account").get(pk=reply_id)


def push(reply_id: int) -> str:
    reply = claim(reply_id)
    if reply is None:
        return "not-claimed"
    ticket, account = reply.ticket, reply.ticket.account
    held_until = limits.admit(account)
    if held_until is not None:
        put_back(reply, until=held_until)
        return "paused"
    attempt_log = AttemptLog()
    try:
        provider = account.get_provider()
        provider.http.on_exchange = attempt_log.add
        limits.govern(provider)
        if not account.enabled:
            raise ProviderConfigurationError(
                f"The account '{account.name}' is disabled; enable it, then retry."
            )
        provider.reply(ticket, reply.body)
        decision = Decision(SyncState.SYNCED, SyncAttempt.Outcome.SUCCESS)
    except limits.AccountBusy as busy:
        put_back(reply, until=busy.until)
        return "throttled"
    except Exception as exc:  # noqa: BLE001 - every failure is classified and recorded
        decision = decide(exc, reply=reply, label=account.provider_class.label)
    finish(reply, decision=decision, attempt_log=attempt_log)
    return decision.state


def put_back(reply: Reply, *, until) -> None:
    claimed = Reply.objects.filter(pk=reply.pk, sync_state=SyncState.SENDING, attempts=reply.attempts)
    released = claimed.update(
        sync_state=SyncState.PENDING, attempts=F("attempts") - 1, sending_since=None, next_attempt_at=until
    )
    delay = max(0.0, (until - timezone.now()).total_seconds())
    if released and delay <= MAX_COUNTDOWN:
        enqueue([reply.pk], countdown=delay)


def decide(exc: Exception, *, reply: Reply, label: str) -> Decision:
    if problems.is_account_level(exc):  # the account's problem: a provider admin is told
        return Decision(SyncState.FAILED, SyncAttempt.Outcome.FAILED,
                        problems.account_message(exc, account=reply.ticket.account),
                        counts_against_account=isinstance(exc, ProviderAuthError), account_problem=True)
    if isinstance(exc, ProviderTransientError) and exc.may_have_applied:
        return Decision(
            SyncState.NEEDS_ATTENTION, SyncAttempt.Outcome.UNKNOWN,
            f"{exc.message} The reply may have been posted in {label}. Check there, then retry or cancel.",
            counts_against_account=True,
        )
    if isinstance(exc, (ProviderRateLimited, ProviderTransientError)):
        if reply.attempts >= settings.SYNC_MAX_ATTEMPTS:
            return Decision(SyncState.FAILED, SyncAttempt.Outcome.FAILED,
                            f"Gave up after {reply.attempts} attempts: {exc.message}",
                            counts_against_account=True)
        return Decision(
            SyncState.PENDING, SyncAttempt.Outcome.RETRY, exc.message,
            retry_in=backoff(reply.attempts, getattr(exc, "retry_after", None)), counts_against_account=True,
        )
    if isinstance(exc, ProviderError):
        return Decision(SyncState.FAILED, SyncAttempt.Outcome.FAILED, exc.message,
                        counts_against_account=isinstance(exc, ProviderAuthError))
    log.exception("Unexpected error while pushing reply %s", reply.pk)
    return Decision(SyncState.NEEDS_ATTENTION, SyncAttempt.Outcome.UNKNOWN,
                    f"Internal error while sending the reply ({type(exc).__name__}); check the provider.")


def finish(reply: Reply, *, decision: Decision, attempt_log: AttemptLog) -> None:
    """Record the outcome, fenced by the claimed attempt."""
    from tickets.sync import record_account_health

    now = timezone.now()
    requeue_in: float | None = None
    ticket = reply.ticket
    with transaction.atomic():
        rows = attempt_log.rows(
            account_id=ticket.account_id, operation=SyncAttempt.Operation.REPLY,
            outcome=decision.outcome, message=decision.message, ticket=ticket,
        )
        SyncAttempt.objects.bulk_create(rows)
        current = Reply.objects.filter(pk=reply.pk, sync_state=SyncState.SENDING, attempts=reply.attempts)
        fields = {"sync_state": decision.state, "sending_since": None, "last_error": decision.message,
                  "next_attempt_at": None}
        if decision.state == SyncState.SYNCED:
            fields["sent_at"] = now
        elif decision.state == SyncState.PENDING:
            fields["next_attempt_at"] = now + timedelta(seconds=decision.retry_in or 0)
            if (decision.retry_in or 0) <= MAX_COUNTDOWN:
                requeue_in = decision.retry_in or 0
        if not current.update(**fields):
            log.warning("Reply %s was taken over while this worker sent it; outcome not applied.", reply.pk)
            return
        record_account_health(ticket.account, decision)
        if requeue_in is not None:
            delay = requeue_in
            transaction.on_commit(lambda: enqueue([reply.pk], countdown=delay))


def sweep(*, limit: int = 1000) -> dict[str, int]:
    """Publish due replies whose message may be lost; hold replies a dead worker left."""
    now = timezone.now()
    quiet_since = now - timedelta(seconds=settings.SYNC_REQUEUE_AFTER)
    due_ids = list(
        Reply.objects.filter(sync_state=SyncState.PENDING, direction=Reply.Direction.OUTBOUND)
        .exclude(ticket__remote_id="")
        .filter(Q(next_attempt_at__isnull=True, created_at__lte=quiet_since)
                | Q(next_attempt_at__lte=quiet_since))
        .order_by("pk").values_list("pk", flat=True)[:limit]
    )
    enqueue(due_ids)
    deadline = now - timedelta(seconds=settings.SYNC_SENDING_DEADLINE)
    recovered = Reply.objects.filter(sync_state=SyncState.SENDING, sending_since__lt=deadline).update(
        sync_state=SyncState.NEEDS_ATTENTION, sending_since=None,
        last_error="The worker stopped while sending this reply; it may have been posted. "
                   "Check the provider, then retry or cancel.",
    )
    return {"published": len(due_ids), "recovered": recovered}


def can_reply(account) -> tuple[bool, str]:
    provider_class = account.provider_class
    if provider_class.supports(REPLY):
        return True, ""
    return False, provider_class.reason_unsupported(REPLY)
