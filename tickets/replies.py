"""Pushing replies: the reply's part of the outbound pipeline (tickets/outbound.py).

A reply goes only once its ticket exists remotely (it has a remote_id); until then it waits
as pending and is published when the ticket's create succeeds. Posting a reply is not
idempotent, so an answer lost after sending holds the reply for a person, as a create is held,
and a reply a dead worker left is never resent.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q, QuerySet

from providers.base import REPLY
from providers.models import ProviderAccount
from tickets import dispatch, outbound
from tickets.models import Reply, SyncAttempt, SyncState, Ticket
from tickets.outbound import Decision


class ReplyPush(outbound.OutboundKind):
    model = Reply
    noun = "reply"
    related = "ticket__account"
    put_back_fields = {"enqueued_at": None}

    def claimable(self, rows: QuerySet, now: datetime) -> QuerySet:
        # Only the console's own replies are ever sent (one read back from the provider is
        # not), and only once the ticket exists remotely.
        return rows.filter(direction=Reply.Direction.OUTBOUND).exclude(ticket__remote_id="")

    def account_of(self, reply: Reply) -> ProviderAccount:
        return reply.ticket.account

    def ticket_of(self, reply: Reply) -> Ticket:
        return reply.ticket

    def operation(self, reply: Reply) -> str:
        return SyncAttempt.Operation.REPLY

    def disabled_message(self, account: ProviderAccount) -> str:
        return f"The account '{account.name}' is disabled; enable it, then retry."

    def call(self, provider, reply: Reply, operation: str) -> None:
        provider.reply(reply.ticket, reply.body)

    def publish(self, ids: list[int], *, countdown: float = 0) -> None:
        dispatch.push_replies(ids, countdown=countdown)

    def unknown_outcome_message(self, reply: Reply, operation: str, exc) -> str:
        label = reply.ticket.account.provider_class.label
        return f"{exc.message} The reply may have been posted in {label}. Check there, then retry or cancel."

    def internal_error(self, exc: Exception, *, operation: str, sent: bool) -> Decision:
        return Decision(
            SyncState.NEEDS_ATTENTION,
            SyncAttempt.Outcome.UNKNOWN,
            f"Internal error while sending the reply ({type(exc).__name__}); check the provider.",
        )

    def success_fields(self, reply: Reply, fields: dict, sent: None, now: datetime) -> dict:
        return {**fields, "sync_state": SyncState.SYNCED, "next_attempt_at": None, "sent_at": now}

    def due_unannounced(self, now: datetime) -> QuerySet:
        # As a ticket's: announced long ago or never (left to an earlier nudge, or put back).
        return (
            Reply.objects.filter(sync_state=SyncState.PENDING, direction=Reply.Direction.OUTBOUND)
            .exclude(ticket__remote_id="")
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
            .filter(
                Q(enqueued_at__isnull=True)
                | Q(enqueued_at__lte=now - timedelta(seconds=settings.SYNC_REQUEUE_AFTER))
            )
            .order_by("pk")
            .values_list("pk", flat=True)
        )

    def recover_stuck(self, stuck: QuerySet, *, limit: int) -> int:
        return stuck.update(
            sync_state=SyncState.NEEDS_ATTENTION,
            lease_renewed_at=None,
            last_error="The worker stopped while sending this reply; it may have been posted. "
            "Check the provider, then retry or cancel.",
        )


REPLIES = ReplyPush()


def sweep(*, limit: int = 1000) -> dict[str, int]:
    """Publish due replies whose message may be lost; hold replies a dead worker left."""
    return outbound.sweep(REPLIES, limit=limit)


def can_reply(account) -> tuple[bool, str]:
    provider_class = account.provider_class
    if provider_class.supports(REPLY):
        return True, ""
    return False, provider_class.reason_unsupported(REPLY)
