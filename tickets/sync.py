"""Pushing tickets to providers: the ticket's part of the outbound pipeline (tickets/outbound.py).

A push is a create when the ticket has no remote id, else an update that sends the whole
current state. What is particular to tickets: a create whose answer was lost is held for a
person unless a resend is safe, an unanswered update opens a settle window, and success stores
the remote ref and the baseline pull compares against. (The replies that were waiting for the
ticket to exist remotely go in the same task, right after the account's tickets: tasks.py.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q, QuerySet

from providers.base import CREATE, UPDATE, RemoteRef
from providers.bounds import engine_setting
from providers.errors import ProviderAuthError, ProviderConfigurationError, ProviderValidationError
from providers.models import ProviderAccount
from tickets import dispatch, outbound, problems
from tickets.models import Attachment, SyncAttempt, SyncState, Ticket
from tickets.outbound import Decision


@dataclass
class Sent:
    """What a successful create or update leaves to record."""

    ref: RemoteRef | None
    #: The provider's status value for the ticket's status ('' when the map has none).
    remote_status: str = ""


class TicketPush(outbound.OutboundKind):
    model = Ticket
    noun = "ticket"
    related = "account"
    put_back_fields = {"enqueued_at": None}
    revision_field = "revision"
    # Pull and the person's actions leave a `sending` row's remote ref alone.
    finish_only_fields = frozenset({"remote_id", "remote_number", "remote_url", "remote_status"})

    def claimable(self, rows: QuerySet, now: datetime) -> QuerySet:
        # Settled: nothing is sent while an unanswered update may still land.
        return rows.filter(Q(settle_until__isnull=True) | Q(settle_until__lte=now))

    def account_of(self, ticket: Ticket) -> ProviderAccount:
        return ticket.account

    def ticket_of(self, ticket: Ticket) -> Ticket:
        return ticket

    def operation(self, ticket: Ticket) -> str:
        return UPDATE if ticket.remote_id else CREATE

    def kept_here(self, ticket: Ticket, operation: str) -> Decision | None:
        if operation == UPDATE and not ticket.account.provider_class.supports(UPDATE):
            # Changed while its create was in flight, at a provider that cannot update: nothing
            # can carry the change, so it is kept here, visibly, rather than "failed" or "synced".
            return Decision(SyncState.LOCAL_ONLY, SyncAttempt.Outcome.SUCCESS)
        return None

    def disabled_message(self, account: ProviderAccount) -> str:
        return problems.disabled_message(account)

    def call(self, provider, ticket: Ticket, operation: str) -> Sent:
        provider.on_upload = Attachment.record_upload  # files uploaded ahead of a create
        ref = provider.create(ticket) if operation == CREATE else provider.update(ticket)
        return Sent(ref, remote_status_sent(provider, ticket))

    def publish(self, ids: list[int], *, countdown: float = 0) -> None:
        dispatch.push_tickets(ids, countdown=countdown)

    def account_problem_message(self, exc: Exception, account: ProviderAccount) -> str:
        if not account.enabled and not isinstance(exc, ProviderAuthError):
            return str(exc)  # the disabled account's own sentence
        return problems.account_message(exc, account=account)

    def unknown_outcome_message(self, ticket: Ticket, operation: str, exc) -> str | None:
        if operation != CREATE or create_resend_safe(ticket.account):
            return None
        return (
            f"{exc.message} The ticket may now exist in {ticket.account.provider_class.label}. "
            "Check there, then retry the create, link the existing remote id, or cancel."
        )

    def settles(self, operation: str, exc: Exception) -> bool:
        return operation == UPDATE and outbound.answer_lost(exc)

    def refusal_message(self, exc, account: ProviderAccount) -> str:
        if isinstance(exc, ProviderValidationError):
            return problems.field_message(exc, account=account)
        return exc.message

    def internal_error(self, exc: Exception, *, operation: str, sent: bool) -> Decision:
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

    def finish_fields(self, ticket: Ticket, decision: Decision, sent: Sent | None, now: datetime) -> dict:
        fields = {
            "updated_at": now,
            "account_problem": decision.account_problem,
            "settle_until": now + timedelta(seconds=decision.retry_in or 0) if decision.settle else None,
        }
        if decision.state == SyncState.LOCAL_ONLY:
            fields["attempts"] = 0
        ref = sent.ref if sent else None
        if ref is not None:
            fields["remote_id"] = ref.remote_id
            for name in ("remote_number", "remote_url", "remote_status"):
                if getattr(ref, name):
                    fields[name] = getattr(ref, name)
        return fields

    def success_fields(self, ticket: Ticket, fields: dict, sent: Sent | None, now: datetime) -> dict:
        # What both sides now hold: the baseline pull compares remote changes against.
        ref = sent.ref if sent else None
        remote_status = (
            (ref.remote_status if ref else "")
            or (sent.remote_status if sent else "")
            or (ticket.remote_status)
        )
        # Fields the provider cannot take (ticket.local_only_fields) keep it "kept here only".
        in_step = SyncState.LOCAL_ONLY if ticket.local_only_fields else SyncState.SYNCED
        # Written only at the revision sent; a ticket edited meanwhile is requeued with these
        # columns (outbound.finish_group, revision_field).
        return {
            **fields,
            "sync_state": in_step,
            "remote_status": remote_status,
            "synced_revision": ticket.revision,
            "last_synced_at": now,
            "synced_fields": {"status": ticket.status, "remote_status": remote_status},
            "attempts": 0,
            "next_attempt_at": None,
        }

    def due_unannounced(self, now: datetime) -> QuerySet:
        return (
            Ticket.objects.filter(sync_state=SyncState.PENDING)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
            .filter(
                Q(enqueued_at__isnull=True)
                | Q(enqueued_at__lte=now - timedelta(seconds=settings.SYNC_REQUEUE_AFTER))
            )
            .order_by("next_attempt_at", "pk")
            .values_list("pk", flat=True)
        )

    def recover_stuck(self, stuck: QuerySet, *, limit: int) -> int:
        return sum(recover_abandoned(ticket) for ticket in stuck.select_related("account")[:limit])


TICKETS = TicketPush()


def sweep(*, limit: int = 1000) -> dict[str, int]:
    """Publish tickets due but unannounced; recover tickets a dead worker left `sending`."""
    return outbound.sweep(TICKETS, limit=limit)


def remote_status_sent(provider, ticket: Ticket) -> str:
    """The provider's status value for the ticket's status ('' when the map has none)."""
    try:
        return provider.remote_status_for(ticket.status)
    except ProviderConfigurationError:
        return ""


def create_resend_safe(account: ProviderAccount) -> bool:
    """A create whose outcome is unknown may be sent again: the provider de-duplicates it
    (Knight), or the account chose to risk a duplicate (`retry_unknown_creates`)."""
    return account.provider_class.create_is_idempotent or bool(
        engine_setting(account.settings, "retry_unknown_creates")
    )


def recover_abandoned(ticket: Ticket) -> int:
    """A row stuck in `sending`: its worker died. An update is simply sent again; a create
    may have reached the provider, so unless a resend is safe a person decides."""
    fields = {"lease_renewed_at": None, "next_attempt_at": None, "enqueued_at": None}
    if ticket.remote_id or create_resend_safe(ticket.account):
        fields["sync_state"] = SyncState.PENDING
    else:
        fields["sync_state"] = SyncState.NEEDS_ATTENTION
        fields["last_error"] = (
            "The worker stopped while creating this ticket; it may now exist in "
            f"{ticket.account.provider_class.label}. Check there, then retry, link the "
            "remote id, or cancel."
        )
    return Ticket.objects.filter(pk=ticket.pk, sync_state=SyncState.SENDING, attempts=ticket.attempts).update(
        **fields
    )
