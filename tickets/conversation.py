"""The provider's side of a ticket's conversation, brought in by pull.

Where a provider's read answer carries the ticket's replies (Keliweb's get-ticket), each
message is stored once as an inbound Reply, keyed by the provider's id of it. Inbound replies
are stored as synced and are never claimed for sending (tickets/replies.py), so nothing
pulled is echoed back.

The console's own replies come back in the same answer. Keliweb's add-ticket-reply answers
without an id, so an outgoing reply is recognised by its text: the first remote message from
the requester's side whose text matches an outgoing reply that has no remote id yet gives
that reply its remote id, and nothing new is stored. A reply held because its answer was lost
is thereby found to have arrived, and counts as sent.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from providers.base import RemoteReply
from tickets.models import Reply, SyncState

#: Outgoing replies that may already be in the provider's conversation: sent, being sent, held
#: after a lost answer, or cancelled by a person who found the held one there. Pending ones
#: have not been sent (again) yet, and failed ones were refused.
MAY_BE_REMOTE = (SyncState.SYNCED, SyncState.SENDING, SyncState.NEEDS_ATTENTION, SyncState.CANCELLED)


def same_text(left: str, right: str) -> bool:
    """Equal once whitespace is evened out (WHMCS stores CRLF line ends and trims)."""
    return " ".join(left.split()) == " ".join(right.split())


def record_remote_replies(*, ticket_id: int, remote_replies: list[RemoteReply]) -> int:
    """Store the messages of `remote_replies` not seen before; returns how many were new."""
    if not remote_replies:
        return 0
    with transaction.atomic():
        # Recognised while its post was under way, then held because that answer was lost.
        arrived(
            Reply.objects.filter(
                ticket_id=ticket_id,
                direction=Reply.Direction.OUTBOUND,
                remote_id__in=[remote.remote_id for remote in remote_replies],
            )
        )
        known = set(
            Reply.objects.filter(ticket_id=ticket_id)
            .exclude(remote_id="")
            .values_list("remote_id", flat=True)
        )
        fresh = [remote for remote in remote_replies if remote.remote_id not in known]
        if not fresh:
            return 0
        own = list(
            Reply.objects.select_for_update()
            .filter(
                ticket_id=ticket_id,
                direction=Reply.Direction.OUTBOUND,
                remote_id="",
                sync_state__in=MAY_BE_REMOTE,
            )
            .order_by("created_at", "id")
        )
        received = []
        for remote in fresh:
            mine = (
                None
                if remote.by_provider_staff
                else next((reply for reply in own if same_text(reply.body, remote.body)), None)
            )
            if mine is not None:
                own.remove(mine)
                recognise(mine, remote.remote_id)
                continue
            received.append(
                Reply(
                    ticket_id=ticket_id,
                    body=remote.body,
                    direction=Reply.Direction.INBOUND,
                    sync_state=SyncState.SYNCED,
                    remote_id=remote.remote_id[:100],
                    remote_author=remote.author[:200],
                    remote_by_staff=remote.by_provider_staff,
                    remote_date=remote.date[:40],
                )
            )
        # A concurrent pull of the same ticket may have stored some already: the unique
        # (ticket, remote_id) constraint keeps one of each.
        Reply.objects.bulk_create(received, ignore_conflicts=True)
    return len(received)


def recognise(reply: Reply, remote_id: str) -> None:
    """An outgoing reply seen in the provider's conversation: remember its remote id."""
    Reply.objects.filter(pk=reply.pk, remote_id="").update(remote_id=remote_id[:100])
    arrived(Reply.objects.filter(pk=reply.pk))


def arrived(replies) -> None:
    """Replies held because the answer to their post was lost, seen at the provider: sent."""
    replies.filter(sync_state=SyncState.NEEDS_ATTENTION).update(
        sync_state=SyncState.SYNCED,
        sent_at=timezone.now(),
        next_attempt_at=None,
        last_error="",
    )
