"""Inbound callbacks: what a provider posts to us (Knight's callbackAddress).

Knight's callback payload is undocumented (docs/providers.md §1), so every body is stored as it
came (`InboundEvent`, de-duplicated by a digest of account and body) and applied only when it
carries a `ticketId` that is one of our references and a `status` the account's inbound map
knows. Applying goes through the same conflict rule as pull (tickets/pull.py). The secret in
the URL is the account's current callback secret, or the previous one within its grace after a
rotation (providers/callback_secret.py).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from console.jsonguard import JSONRefused
from console.jsonguard import loads as guarded_loads
from providers import callback_secret
from providers.models import ProviderAccount
from tickets.models import InboundEvent, Ticket
from tickets.pull import REMOTE_STATUS_MAX_LENGTH, apply_remote_status, inbound_status_reader

#: A stand-in compared when there are fewer real secrets than can be accepted, so the time
#: taken tells nothing about which accounts exist or whether a rotation is in its grace.
STAND_IN_SECRET = b"\0" * 43


class CallbackRefused(Exception):
    """Unknown account or wrong secret: answered 404 so nothing is revealed."""


@dataclass(frozen=True)
class Received:
    event: InboundEvent
    duplicate: bool


def receive(*, kind: str, account_id: int, secret: str, body: bytes) -> Received:
    """Check the secret, store the body once, apply it when it says which ticket and status."""
    # An id past the 64-bit column (the URL takes any digits) names no account.
    in_range = 0 < account_id < 2**63
    account = ProviderAccount.objects.filter(pk=account_id, kind=kind).first() if in_range else None
    accepted = (
        [value.encode() for value in callback_secret.accepted(account, now=timezone.now())]
        if account is not None and callback_secret.calls_back(account) else []
    )
    given = (secret or "").encode()
    candidates = accepted + [STAND_IN_SECRET] * (callback_secret.MOST_ACCEPTED - len(accepted))
    # Every candidate is compared (no early exit); only a real secret's match counts.
    results = [hmac.compare_digest(candidate, given) for candidate in candidates]
    if account is None or not any(results[: len(accepted)]):
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
    payload = event.payload if not event.note else {}
    reference = str(payload.get("ticketId") or "").strip()
    status = str(payload.get("status") or "").strip()
    if not reference:
        return
    ticket = Ticket.objects.filter(account_id=event.account_id, reference=reference).first()
    if ticket is None:
        event.note = f"No ticket {reference[:40]} on this account: stored, not applied."
        event.save(update_fields=["note"])
        return
    event.ticket = ticket
    if not status:
        event.note = "No status in the payload: stored with the ticket."
    elif len(status) > REMOTE_STATUS_MAX_LENGTH:
        event.note = (f"Status of {len(status):,} characters (at most {REMOTE_STATUS_MAX_LENGTH}): "
                      "stored, not applied.")
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
