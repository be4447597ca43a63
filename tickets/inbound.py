"""Inbound callbacks: what a provider posts to us, for any provider that declares an
`InboundHandler` (providers/inbound.py; today Knight's callbackAddress).

Callback payloads are loosely documented, so every body is stored as it came (`InboundEvent`,
de-duplicated by a digest of account and body) and applied only when the provider's handler
reads from it one of our references and a status the account's inbound map knows. Applying
goes through the same conflict rule as pull (tickets/pull.py). The handler verifies the secret
in the URL against the account's current callback secret, or the previous one within its grace
after a rotation (providers/callback_secret.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from console.jsonguard import JSONRefused
from console.jsonguard import loads as guarded_loads
from providers import callback_secret
from providers.inbound import handler_for
from providers.models import ProviderAccount
from tickets.models import InboundEvent, Ticket
from tickets.pull import REMOTE_STATUS_MAX_LENGTH, apply_remote_status, inbound_status_reader


class CallbackRefused(Exception):
    """Unknown account or wrong secret: answered 404 so nothing is revealed."""


@dataclass(frozen=True)
class Received:
    event: InboundEvent
    duplicate: bool


def receive(*, route: str, account_id: int, secret: str, body: bytes) -> Received:
    """Check the secret, store the body once, apply it when it says which ticket and status."""
    served = handler_for(route)
    if served is None:
        raise CallbackRefused
    kind, handler = served
    # An id past the 64-bit column (the URL takes any digits) names no account.
    in_range = 0 < account_id < 2**63
    account = ProviderAccount.objects.filter(pk=account_id, kind=kind).first() if in_range else None
    accepted = callback_secret.accepted(account, now=timezone.now()) if account is not None else []
    # Verified even for an unknown account, so the time taken tells nothing about which exist.
    if not handler.verify(secret, accepted) or account is None:
        raise CallbackRefused
    digest = hashlib.sha256(f"{account.pk}:".encode() + body).hexdigest()
    existing = InboundEvent.objects.filter(digest=digest).first()
    if existing is not None:
        return Received(existing, duplicate=True)
    payload, note = parse(body)
    try:
        with transaction.atomic():
            event = InboundEvent.objects.create(account=account, digest=digest, payload=payload, note=note)
    except IntegrityError:  # the same body arrived twice at once
        return Received(InboundEvent.objects.get(digest=digest), duplicate=True)
    apply(event)
    return Received(event, duplicate=False)


def parse(body: bytes) -> tuple[dict, str]:
    try:
        data = guarded_loads(body)
    except JSONRefused as exc:
        note = "Not JSON" if exc.syntax else f"Not usable JSON ({exc})"
        # NUL cannot be stored in PostgreSQL text or jsonb: shown as U+FFFD like other bad bytes.
        raw = body.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
        return {"raw": raw}, f"{note}: stored, not applied."
    if not isinstance(data, dict):
        return {"raw": data}, "Not a JSON object: stored, not applied."
    return data, ""


def apply(event: InboundEvent) -> None:
    if event.note:  # not a JSON object: nothing to read
        return
    change = event.account.provider_class.inbound.parse(event.payload)
    if change is None:
        return
    reference, status = change.reference, change.status
    ticket = Ticket.objects.filter(account_id=event.account_id, reference=reference).first()
    if ticket is None:
        event.note = f"No ticket {reference[:40]} on this account: stored, not applied."
        event.save(update_fields=["note"])
        return
    event.ticket = ticket
    if not status:
        event.note = "No status in the payload: stored with the ticket."
    elif len(status) > REMOTE_STATUS_MAX_LENGTH:
        event.note = (
            f"Status of {len(status):,} characters (at most {REMOTE_STATUS_MAX_LENGTH}): stored, not applied."
        )
    elif inbound_status_reader(event.account)(status) is None:
        event.note = f"Status '{status[:40]}' is not in the account's inbound status map."
        apply_remote_status(ticket_id=ticket.pk, remote_status=status)  # keeps the raw value
    else:
        outcome = apply_remote_status(ticket_id=ticket.pk, remote_status=status)
        event.applied = outcome in ("applied", "unchanged")
        event.note = {
            "applied": f"Status set from {status}.",
            "unchanged": f"Status {status}: nothing to change.",
            "conflict": "The console changed the status too: the ticket needs attention.",
            "skipped": "The ticket was being sent: not applied; the next update or pull settles it.",
            "refused": "The status is too long: stored, not applied.",
        }[outcome]
    event.save(update_fields=["ticket", "applied", "note"])
