"""What the console does with tickets. Views, admin, tasks and commands all call these;
none of them holds business logic of its own."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone

from console.crypto import CredentialsUnreadable
from providers.base import UPDATE
from providers.errors import ProviderConfigurationError, ProviderError
from providers.models import ProviderAccount
from tickets import sync
from tickets.models import Attachment, Priority, Status, SyncAttempt, SyncState, Ticket

# Fields whose change must reach the provider.
SYNCED_FIELDS = (
    "title", "description", "requester_email", "requester_name", "priority", "impact",
    "status", "due_at", "tags", "extra",
)


class TicketActionError(Exception):
    """A request a person made that cannot be carried out; the message says why."""


def create_ticket(
    *,
    account: ProviderAccount,
    title: str,
    description: str = "",
    requester_email: str = "",
    requester_name: str = "",
    priority: str = Priority.MEDIUM,
    impact: str = "",
    status: str = Status.NEW,
    due_at: datetime | None = None,
    tags: list[str] | None = None,
    extra: dict[str, Any] | None = None,
    created_by=None,
    files: list | None = None,
) -> Ticket:
    """Save a new ticket (and its uploaded `files`) and queue its create; the worker is woken
    after the commit, so the files are there when it sends."""
    with transaction.atomic():
        ticket = Ticket.objects.create(
            account=account, title=title, description=description,
            requester_email=requester_email, requester_name=requester_name,
            priority=priority, impact=impact, status=status, due_at=due_at,
            tags=list(tags or []), extra=dict(extra or {}), created_by=created_by,
            revision=1, sync_state=SyncState.PENDING,
        )
        for upload in files or []:
            add_attachment(ticket=ticket, upload=upload, uploaded_by=created_by)
        sync.enqueue_push_on_commit(ticket.pk)
    return ticket


def update_ticket(*, ticket: Ticket, changes: dict[str, Any]) -> Ticket:
    """Apply `changes` and, when a synced field changed, queue a full update.

    A ticket being sent stays `sending` (its worker sees the newer revision and sends
    again); a create whose outcome is unknown stays held for a person.
    """
    unknown = set(changes) - set(SYNCED_FIELDS)
    if unknown:
        raise TicketActionError(f"These fields cannot be changed: {', '.join(sorted(unknown))}.")
    changed = [name for name, value in changes.items() if getattr(ticket, name) != value]
    if not changed:
        return ticket
    with transaction.atomic():
        locked = Ticket.objects.select_for_update().select_related("account").get(pk=ticket.pk)
        for name in changed:
            setattr(locked, name, changes[name])
        locked.save(update_fields=[*changed, "updated_at"])
        if locked.remote_id and not locked.account.provider_class.supports(UPDATE):
            # Kept locally; the provider has no way to receive it (see the provider's reason).
            return locked
        mark_changed(locked.pk)
        locked.refresh_from_db()
    return locked


def mark_changed(ticket_id: int) -> None:
    """Bump the revision and make the row pending where it may be sent (inside a transaction)."""
    hold = [SyncState.SENDING, SyncState.CANCELLED]
    Ticket.objects.filter(pk=ticket_id).update(
        revision=F("revision") + 1,
        sync_state=Case(
            When(sync_state__in=hold, then=F("sync_state")),
            When(sync_state=SyncState.NEEDS_ATTENTION, remote_id="", then=F("sync_state")),
            default=Value(SyncState.PENDING),
        ),
        attempts=Case(When(sync_state__in=hold, then=F("attempts")), default=Value(0)),
        next_attempt_at=None,
    )
    sync.enqueue_push_on_commit(ticket_id)


def retry_sync(*, ticket: Ticket) -> Ticket:
    """A person asks for another try (after a failure, or after checking an unknown create)."""
    allowed = [SyncState.FAILED, SyncState.NEEDS_ATTENTION, SyncState.PENDING]
    with transaction.atomic():
        updated = Ticket.objects.filter(pk=ticket.pk, sync_state__in=allowed).update(
            sync_state=SyncState.PENDING, attempts=0, next_attempt_at=None, last_error=""
        )
        if not updated:
            raise TicketActionError(f"{ticket.reference} is {ticket.get_sync_state_display()}: "
                                    "there is nothing to retry.")
        sync.enqueue_push_on_commit(ticket.pk)
    ticket.refresh_from_db()
    return ticket


def add_attachment(*, ticket: Ticket, upload, uploaded_by=None) -> Attachment:
    """Attach an uploaded file to a ticket that has not been created remotely yet."""
    provider_class = ticket.account.provider_class
    if not provider_class.accepts_attachments:
        raise TicketActionError(f"{provider_class.label} does not take attachments.")
    if ticket.remote_id:
        raise TicketActionError(
            f"Files travel with the create, and {ticket.reference} already exists in "
            f"{provider_class.label}: attach them there."
        )
    if upload.size > settings.ATTACHMENT_MAX_BYTES:
        limit_mb = settings.ATTACHMENT_MAX_BYTES / (1024 * 1024)
        raise TicketActionError(f"{upload.name} is larger than the {limit_mb:g} MB limit.")
    return Attachment.objects.create(
        ticket=ticket, file=upload, name=upload.name, size=upload.size,
        content_type=getattr(upload, "content_type", "") or "", uploaded_by=uploaded_by,
    )


@dataclass(frozen=True)
class ConnectionResult:
    ok: bool
    message: str
    latency_ms: int


def test_connection(*, account: ProviderAccount) -> ConnectionResult:
    """Authenticate against the provider and make its cheapest call; recorded as an attempt."""
    attempt_log = sync.AttemptLog()
    started = time.monotonic()
    try:
        provider = account.get_provider()
        provider.http.on_exchange = attempt_log.add
        message, ok = provider.test_connection(), True
    except (ProviderError, ProviderConfigurationError, CredentialsUnreadable) as exc:
        message, ok = getattr(exc, "message", str(exc)), False
    latency_ms = int((time.monotonic() - started) * 1000)
    outcome = SyncAttempt.Outcome.SUCCESS if ok else SyncAttempt.Outcome.FAILED
    now = timezone.now()
    SyncAttempt.objects.bulk_create(
        attempt_log.rows(
            account_id=account.pk, operation=SyncAttempt.Operation.TEST, outcome=outcome,
            message="" if ok else message,
        )
    )
    if ok:
        ProviderAccount.objects.filter(pk=account.pk).update(last_ok_at=now, consecutive_failures=0)
    else:
        ProviderAccount.objects.filter(pk=account.pk).update(last_error=message, last_error_at=now)
    return ConnectionResult(ok, message, latency_ms)
