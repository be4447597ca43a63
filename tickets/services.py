"""What the console does with tickets. Views, admin, tasks and commands all call these;
none of them holds business logic of its own."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone

from console.crypto import CredentialsUnreadable
from providers import callback_secret
from providers.base import FETCH, UPDATE, RemoteRef, RemoteState
from providers.errors import (
    ProviderAuthError,
    ProviderConfigurationError,
    ProviderError,
    ProviderNotFoundError,
    ProviderRateLimited,
    ProviderTransientError,
)
from providers.models import ProviderAccount
from tickets import dispatch, limits, pull, replies, statements
from tickets.attempts import AttemptLog
from tickets.models import Attachment, Priority, Reply, Status, SyncAttempt, SyncState, Ticket

# Fields whose change must reach the provider.
SYNCED_FIELDS = (
    "title",
    "description",
    "requester_email",
    "requester_name",
    "priority",
    "impact",
    "status",
    "due_at",
    "tags",
    "extra",
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
    after the commit, so the files are there when it sends.

    Without files the save is one statement, atomic on its own (the reference comes with it,
    tickets/references.py), so no transaction is opened around it: on PostgreSQL that saves
    the BEGIN and COMMIT round trips of every create."""
    ticket = Ticket(
        account=account,
        title=title,
        description=description,
        requester_email=requester_email,
        requester_name=requester_name,
        priority=priority,
        impact=impact,
        status=status,
        due_at=due_at,
        tags=list(tags or []),
        extra=dict(extra or {}),
        created_by=created_by,
        revision=1,
        sync_state=SyncState.PENDING,
    )
    with transaction.atomic() if files else contextlib.nullcontext():
        statements.insert_new(ticket)  # Ticket.objects.create's INSERT, without its compiler
        ticket.inserted()
        for upload in files or []:
            add_attachment(ticket=ticket, upload=upload, uploaded_by=created_by)
        dispatch.push_new_ticket_on_commit(ticket.pk, account.pk)
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
        kept = locked.account.provider_class.fields_kept_here(changed) if locked.remote_id else []
        if kept:
            # The provider has no way to receive these (see its reason): kept here, and shown
            # as such, never as "synced".
            remember_kept_here(Ticket.objects.filter(pk=locked.pk), [locked], kept)
        if kept == sorted(changed):
            keep_here_only(Ticket.objects.filter(pk=locked.pk))
            locked.refresh_from_db()
            return locked
        mark_changed(locked.pk)
        locked.refresh_from_db()
    return locked


def mark_changed(ticket_id: int) -> None:
    """Bump the revision and make the row pending where it may be sent (inside a transaction)."""
    bump_revision(Ticket.objects.filter(pk=ticket_id))
    dispatch.push_ticket_on_commit(ticket_id)


def bump_revision(tickets) -> int:
    """One UPDATE: a new revision, and pending where the rows may be sent. A row being sent
    stays `sending` (its worker sees the newer revision); a cancelled one stays cancelled; a
    create whose outcome is unknown stays held for a person."""
    hold = [SyncState.SENDING, SyncState.CANCELLED]
    return tickets.update(
        revision=F("revision") + 1,
        sync_state=Case(
            When(sync_state__in=hold, then=F("sync_state")),
            When(sync_state=SyncState.NEEDS_ATTENTION, remote_id="", then=F("sync_state")),
            default=Value(SyncState.PENDING),
        ),
        attempts=Case(When(sync_state__in=hold, then=F("attempts")), default=Value(0)),
        next_attempt_at=limits.due_after_settle(),
    )


def keep_here_only(tickets) -> int:
    """A change the provider has no call for (e.g. Keliweb cannot update a ticket): a new
    revision that stays in the console. Nothing is sent for it; a synced row now shows "kept
    here only", any other keeps its state (an update already waiting still goes, and ends
    "kept here only" too: see TicketPush.success_fields in sync.py). Inside the caller's transaction."""
    changed = tickets.update(revision=F("revision") + 1)
    tickets.filter(sync_state=SyncState.SYNCED).update(sync_state=SyncState.LOCAL_ONLY, last_error="")
    return changed


def remember_kept_here(tickets, rows: list[Ticket], fields: list[str]) -> None:
    """Add `fields` to the tickets' local_only_fields: one UPDATE per resulting list (`rows`
    are the tickets as read, so the lists are few whatever the number of tickets)."""
    by_result: dict[tuple[str, ...], list[int]] = {}
    for ticket in rows:
        result = tuple(sorted(set(ticket.local_only_fields or []) | set(fields)))
        if list(result) != list(ticket.local_only_fields or []):
            by_result.setdefault(result, []).append(ticket.pk)
    for result, ids in by_result.items():
        tickets.filter(pk__in=ids).update(local_only_fields=list(result))


def fresh_attempts() -> dict[str, Any]:
    """The columns that make a row due again with its attempts reset (a person's retry, one
    row or many); a settle window still in force is kept (limits.due_after_settle)."""
    return {
        "sync_state": SyncState.PENDING,
        "attempts": 0,
        "next_attempt_at": limits.due_after_settle(),
        "last_error": "",
        "account_problem": False,
    }


def retry_sync(*, ticket: Ticket) -> Ticket:
    """A person asks for another try (after a failure, or after checking an unknown create)."""
    allowed = [SyncState.FAILED, SyncState.NEEDS_ATTENTION, SyncState.PENDING]
    with transaction.atomic():
        updated = Ticket.objects.filter(pk=ticket.pk, sync_state__in=allowed).update(**fresh_attempts())
        if not updated:
            raise TicketActionError(
                f"{ticket.reference} is {ticket.get_sync_state_display()}: there is nothing to retry."
            )
        dispatch.push_ticket_on_commit(ticket.pk)
    ticket.refresh_from_db()
    return ticket


class RemoteIdRejected(TicketActionError):
    """The provider has no ticket with the id a person gave: an error on the remote id field."""


def check_remote_id(*, ticket: Ticket, remote_id: str) -> RemoteRef | None:
    """Read `remote_id` from the ticket's provider before it is linked (recorded as a fetch).

    Returns where the ticket lives as the read answer tells it (number, link, status), or None
    where the provider cannot be read (nothing could be checked). Raises RemoteIdRejected when
    the provider has no such ticket, and TicketActionError when the read failed for another
    reason: then nothing may be linked.
    """
    account = ticket.account
    provider_class = account.provider_class
    label = provider_class.label
    if not provider_class.supports(FETCH):
        return None
    if not account.enabled or limits.admit(account) is not None:
        raise TicketActionError(
            f"The account '{account.name}' is disabled or paused, so {remote_id} "
            f"could not be looked up in {label}. Nothing was linked."
        )
    # An unsaved copy carrying the candidate id (never saved): the provider's fetch reads it
    # like any ticket.
    probe = Ticket(account=account, reference=ticket.reference, title=ticket.title, remote_id=remote_id)
    attempt_log = AttemptLog()
    states: list[RemoteState] = []
    error: Exception | None = None
    provider = None
    try:
        provider = account.get_provider()
        provider.http.on_exchange = attempt_log.add
        limits.govern(provider)
        states = provider.fetch([probe])
    except (ProviderError, ProviderConfigurationError, CredentialsUnreadable, limits.AccountBusy) as exc:
        error = exc
    found = next((state for state in states if state.remote_id == remote_id), None)
    missing = isinstance(error, ProviderNotFoundError) or (error is None and found is None)
    message = getattr(error, "message", str(error or ""))
    if isinstance(error, limits.AccountBusy):
        message = "the account's rate limit has no free slot soon."
    SyncAttempt.objects.bulk_create(
        attempt_log.rows(
            account_id=account.pk,
            operation=SyncAttempt.Operation.FETCH,
            outcome=SyncAttempt.Outcome.SUCCESS if found else SyncAttempt.Outcome.FAILED,
            message=f"Looked up {remote_id} to link it: {message or 'no such ticket'}" if not found else "",
            ticket=ticket,
        )
    )
    if isinstance(error, (ProviderAuthError, ProviderRateLimited, ProviderTransientError)):
        limits.record_failure(account, message)
    elif error is None or missing:  # an answer, even "no such ticket", shows the account works
        limits.record_success(account)
    if missing:
        raise RemoteIdRejected(f"{label} has no ticket {remote_id}.")
    if error is not None:
        raise TicketActionError(
            f"{remote_id} could not be looked up in {label}: {message} Nothing was linked; try again."
        )
    return provider.ref_from_state(found)


def link_remote_id(
    *, ticket: Ticket, remote_id: str, remote_number: str = "", remote_url: str = ""
) -> Ticket:
    """A person found the ticket in the provider (after an unknown create): record where it is.

    Where the provider can be read, the id is looked up first: an id it does not know is
    refused (RemoteIdRejected) and a failed read links nothing. Synced at the current revision
    when nothing changed since the create was sent; otherwise pending, so the newer state goes
    as an update.
    """
    remote_id = (remote_id or "").strip()
    if not remote_id:
        raise TicketActionError("Enter the ticket's id in the provider.")
    current = Ticket.objects.select_related("account").get(pk=ticket.pk)
    refuse_unless_held(current)
    remote = check_remote_id(ticket=current, remote_id=remote_id)  # no row lock held while reading
    with transaction.atomic():
        locked = Ticket.objects.select_for_update().select_related("account").get(pk=ticket.pk)
        refuse_unless_held(locked)
        remote = remote or RemoteRef(remote_id=remote_id)
        if remote.remote_status:
            locked.remote_status = remote.remote_status
        # What the person typed wins; what the provider's answer tells fills the rest.
        locked.remote_id = remote_id
        locked.remote_number = (remote_number or "").strip() or remote.remote_number
        locked.remote_url = (remote_url or "").strip() or remote.remote_url
        locked.attempts, locked.next_attempt_at, locked.last_error = 0, None, ""
        # The revision the unresolved create carried; unknown (a dead worker) means "send again".
        sent_revision = (
            locked.attempts_log.filter(operation=SyncAttempt.Operation.CREATE)
            .order_by("-started_at", "-id")
            .values_list("revision", flat=True)
            .first()
        )
        can_update = locked.account.provider_class.supports(UPDATE)
        if sent_revision == locked.revision:
            locked.sync_state, locked.synced_revision = SyncState.SYNCED, locked.revision
            locked.last_synced_at = timezone.now()
            locked.synced_fields = {"status": locked.status, "remote_status": locked.remote_status}
        elif not can_update:
            # Changed since the create was sent, and the provider cannot take the change.
            locked.sync_state, locked.synced_revision = SyncState.LOCAL_ONLY, sent_revision or 0
            locked.last_synced_at = timezone.now()
        else:
            locked.sync_state = SyncState.PENDING
            dispatch.push_ticket_on_commit(locked.pk)
        locked.save()
    return locked


def refuse_unless_held(ticket: Ticket) -> None:
    if ticket.sync_state != SyncState.NEEDS_ATTENTION or ticket.remote_id:
        raise TicketActionError(
            f"{ticket.reference} is {ticket.get_sync_state_display()}: only a "
            "ticket that needs attention can be linked to a remote id."
        )


def cancel_sync(*, ticket: Ticket) -> Ticket:
    """Stop syncing a ticket (e.g. an unknown create a person decided against); never sent."""
    updated = (
        Ticket.objects.filter(pk=ticket.pk)
        .exclude(sync_state=SyncState.SENDING)
        .update(sync_state=SyncState.CANCELLED, next_attempt_at=None, last_error="")
    )
    if not updated:
        raise TicketActionError(f"{ticket.reference} is being sent right now: try again in a moment.")
    ticket.refresh_from_db()
    return ticket


def add_reply(*, ticket: Ticket, body: str, author=None) -> Reply:
    """Queue a reply to the ticket's remote copy; refused where the provider takes none."""
    allowed, reason = replies.can_reply(ticket.account)
    if not allowed:
        raise TicketActionError(reason)
    if not (body or "").strip():
        raise TicketActionError("Write the reply first.")
    with transaction.atomic():
        reply = Reply.objects.create(ticket=ticket, body=body.strip(), author=author)
        transaction.on_commit(lambda: dispatch.push_replies([reply.pk]))
    return reply


def retry_reply(*, reply: Reply) -> Reply:
    """Send a failed or held reply again (after checking the provider for a lost one)."""
    with transaction.atomic():
        updated = Reply.objects.filter(
            pk=reply.pk,
            sync_state__in=[SyncState.FAILED, SyncState.NEEDS_ATTENTION],
            direction=Reply.Direction.OUTBOUND,
        ).update(sync_state=SyncState.PENDING, attempts=0, next_attempt_at=None, last_error="")
        if not updated:
            raise TicketActionError(f"The reply is {reply.get_sync_state_display()}: nothing to retry.")
        transaction.on_commit(lambda: dispatch.push_replies([reply.pk]))
    reply.refresh_from_db()
    return reply


def cancel_reply(*, reply: Reply) -> Reply:
    """Never send this reply (e.g. a held one that did reach the provider)."""
    updated = (
        Reply.objects.filter(pk=reply.pk)
        .exclude(sync_state__in=[SyncState.SENDING, SyncState.SYNCED])
        .update(sync_state=SyncState.CANCELLED, next_attempt_at=None)
    )
    if not updated:
        raise TicketActionError(f"The reply is {reply.get_sync_state_display()}: it cannot be cancelled.")
    reply.refresh_from_db()
    return reply


def ensure_callback_secret(*, account: ProviderAccount) -> str:
    """The account's inbound callback secret, made once (providers/callback_secret.py)."""
    refuse_unless_calls_back(account)
    return callback_secret.ensure(account)


def rotate_callback_secret(*, account: ProviderAccount) -> datetime | None:
    """A new callback secret for the account; returns until when the old one is still
    accepted (None when it had none)."""
    refuse_unless_calls_back(account)
    rotation = callback_secret.rotate(account)
    return rotation.previous_until if rotation else None


def refuse_unless_calls_back(account: ProviderAccount) -> None:
    if not callback_secret.calls_back(account):
        raise TicketActionError(f"{account.provider_class.label} does not call back.")


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
        ticket=ticket,
        file=upload,
        name=upload.name,
        size=upload.size,
        content_type=getattr(upload, "content_type", "") or "",
        uploaded_by=uploaded_by,
    )


@dataclass(frozen=True)
class ConnectionResult:
    ok: bool
    message: str
    latency_ms: int


def test_connection(*, account: ProviderAccount) -> ConnectionResult:
    """Authenticate against the provider and make its cheapest call; recorded as an attempt."""
    attempt_log = AttemptLog()
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
            account_id=account.pk,
            operation=SyncAttempt.Operation.TEST,
            outcome=outcome,
            message="" if ok else message,
        )
    )
    if ok:
        ProviderAccount.objects.filter(pk=account.pk).update(
            last_ok_at=now,
            consecutive_failures=0,
            problem_since=None,  # the account works again
        )
    else:
        ProviderAccount.objects.filter(pk=account.pk).update(last_error=message, last_error_at=now)
    return ConnectionResult(ok, message, latency_ms)


def pause_account(*, account: ProviderAccount, seconds: float | None = None) -> datetime:
    """Hold every call to the account (sets paused_until) for `seconds`, or until resumed."""
    return limits.pause(account, seconds=seconds)


def resume_account(*, account: ProviderAccount) -> int:
    """End a pause (clears paused_until and the failure count); returns tickets released."""
    return limits.resume(account)


# --- bulk actions: tickets/bulk.py walks a selection in chunks and calls these -------------
# Each takes one chunk of ids, locks those rows, does one UPDATE per kind of change and
# enqueues each changed ticket once after the commit; the sync semantics are mark_changed's.
SUCCEEDED, FAILED, SKIPPED = "succeeded", "failed", "skipped"
#: Changed in the console, but the provider has no call for the change: not "succeeded".
KEPT_HERE = "kept_here"


class BulkOutcome:
    """What a bulk step did, ticket by ticket: outcome (succeeded/failed/skipped) → reason → ids."""

    def __init__(self) -> None:
        self.groups: dict[str, dict[str, list[int]]] = {}

    def add(self, outcome: str, reason: str, ticket_ids: list[int]) -> None:
        if ticket_ids:
            self.groups.setdefault(outcome, {}).setdefault(reason, []).extend(ticket_ids)

    def count(self, outcome: str) -> int:
        return sum(len(ids) for ids in self.groups.get(outcome, {}).values())


def _lock_chunk(ticket_ids: list[int], outcome: BulkOutcome) -> list[Ticket]:
    """The chunk's rows, locked until the caller's transaction ends; vanished ids are skipped."""
    tickets = list(
        Ticket.objects.select_for_update(of=("self",))
        .select_related("account")
        .filter(pk__in=ticket_ids)
        .order_by("pk")
    )
    found = {ticket.pk for ticket in tickets}
    outcome.add(SKIPPED, "No longer exists", [pk for pk in ticket_ids if pk not in found])
    return tickets


def mark_changed_many(ticket_ids: list[int]) -> None:
    """mark_changed for many rows in one UPDATE (inside a transaction); one push each after commit."""
    if not ticket_ids:
        return
    bump_revision(Ticket.objects.filter(pk__in=ticket_ids))
    ids = list(ticket_ids)
    transaction.on_commit(lambda: dispatch.push_tickets(ids))


def _requeue_now(ticket_ids: list[int]) -> None:
    """Make rows due at once with fresh attempts (retry_sync's semantics, many rows)."""
    if ticket_ids:
        Ticket.objects.filter(pk__in=ticket_ids).update(**fresh_attempts())
        ids = list(ticket_ids)
        transaction.on_commit(lambda: dispatch.push_tickets(ids))


def _apply_changes(tickets: list[Ticket], changes: dict[str, Any], outcome: BulkOutcome) -> None:
    """Write `changes` to the tickets that differ and queue their sync (update_ticket, many rows)."""
    differing = [t for t in tickets if any(getattr(t, name) != value for name, value in changes.items())]
    differing_ids = {t.pk for t in differing}
    outcome.add(SKIPPED, "Already set", [t.pk for t in tickets if t.pk not in differing_ids])
    if not differing:
        return
    Ticket.objects.filter(pk__in=[t.pk for t in differing]).update(**changes, updated_at=timezone.now())
    sendable, held_for_a_person, cancelled, kept_here = [], [], [], []
    partly_kept: dict[tuple[str, ...], list[Ticket]] = {}  # the fields kept -> their tickets
    changed_names = sorted(changes)
    for ticket in differing:
        provider_class = ticket.account.provider_class
        kept = provider_class.fields_kept_here(changed_names) if ticket.remote_id else []
        if kept:
            partly_kept.setdefault(tuple(kept), []).append(ticket)
        if kept == changed_names:
            # Kept here, like update_ticket: the provider has no way to receive it.
            outcome.add(KEPT_HERE, f"Changed here only: {provider_class.reason_kept_here(kept)}", [ticket.pk])
            kept_here.append(ticket.pk)
        elif ticket.sync_state == SyncState.CANCELLED:
            cancelled.append(ticket.pk)
        elif ticket.sync_state == SyncState.NEEDS_ATTENTION and not ticket.remote_id:
            held_for_a_person.append(ticket.pk)
        else:
            sendable.append(ticket.pk)
    # Held rows get the new revision too (bump_revision keeps their state), so whatever a
    # person decides later sends the changed ticket; nothing is published for them now.
    bump_revision(Ticket.objects.filter(pk__in=held_for_a_person + cancelled))
    for fields, rows in partly_kept.items():
        remember_kept_here(Ticket.objects.all(), rows, list(fields))
    keep_here_only(Ticket.objects.filter(pk__in=kept_here))
    mark_changed_many(sendable)
    outcome.add(SUCCEEDED, "Changed and queued for sync", sendable)
    outcome.add(
        SUCCEEDED, "Changed here; not sent until a person settles its unknown create", held_for_a_person
    )
    outcome.add(SUCCEEDED, "Changed here; not sent: sync is cancelled for this ticket", cancelled)


def bulk_change_fields(*, ticket_ids: list[int], changes: dict[str, Any]) -> BulkOutcome:
    """Set synced fields (e.g. status or priority) on one chunk of tickets."""
    unknown = set(changes) - set(SYNCED_FIELDS)
    if unknown:
        raise TicketActionError(f"These fields cannot be changed: {', '.join(sorted(unknown))}.")
    outcome = BulkOutcome()
    with transaction.atomic():
        _apply_changes(_lock_chunk(ticket_ids, outcome), changes, outcome)
    return outcome


def bulk_sync_now(*, ticket_ids: list[int]) -> BulkOutcome:
    """Send one chunk of tickets now: waiting or failed ones at once, synced ones again."""
    outcome = BulkOutcome()
    with transaction.atomic():
        tickets = _lock_chunk(ticket_ids, outcome)
        due, resend = [], []
        for ticket in tickets:
            provider_class = ticket.account.provider_class
            if ticket.sync_state in (SyncState.PENDING, SyncState.FAILED):
                due.append(ticket.pk)
            elif ticket.sync_state == SyncState.LOCAL_ONLY and not provider_class.supports(UPDATE):
                outcome.add(SKIPPED, provider_class.reason_unsupported(UPDATE), [ticket.pk])
            elif ticket.sync_state in (SyncState.SYNCED, SyncState.LOCAL_ONLY):
                if ticket.remote_id and not provider_class.supports(UPDATE):
                    outcome.add(FAILED, provider_class.reason_unsupported(UPDATE), [ticket.pk])
                else:
                    resend.append(ticket.pk)
            elif ticket.sync_state == SyncState.NEEDS_ATTENTION:
                outcome.add(
                    FAILED,
                    "The outcome of its create is unknown: check the provider, then retry it on its own page",
                    [ticket.pk],
                )
            elif ticket.sync_state == SyncState.SENDING:
                outcome.add(SKIPPED, "Being sent right now", [ticket.pk])
            else:
                outcome.add(SKIPPED, "Sync cancelled", [ticket.pk])
        _requeue_now(due)
        mark_changed_many(resend)
        outcome.add(SUCCEEDED, "Queued for sync", due)
        outcome.add(SUCCEEDED, "Queued to be sent again", resend)
    return outcome


def bulk_retry_failed(*, ticket_ids: list[int]) -> BulkOutcome:
    """Retry the failed tickets of one chunk; an unknown create stays for a person to check."""
    outcome = BulkOutcome()
    with transaction.atomic():
        tickets = _lock_chunk(ticket_ids, outcome)
        failed = [t.pk for t in tickets if t.sync_state == SyncState.FAILED]
        _requeue_now(failed)
        outcome.add(SUCCEEDED, "Queued again", failed)
        unknown = [t.pk for t in tickets if t.sync_state == SyncState.NEEDS_ATTENTION]
        outcome.add(
            SKIPPED,
            "The outcome of its create is unknown: check the provider, then retry it on its own page",
            unknown,
        )
        outcome.add(
            SKIPPED,
            "Not failed",
            [t.pk for t in tickets if t.sync_state not in (SyncState.FAILED, SyncState.NEEDS_ATTENTION)],
        )
    return outcome


def bulk_cancel(*, ticket_ids: list[int]) -> BulkOutcome:
    """Cancel one chunk of tickets: never-created ones stop syncing; created ones are sent the
    cancelled status where the provider takes updates."""
    outcome = BulkOutcome()
    with transaction.atomic():
        tickets = _lock_chunk(ticket_ids, outcome)
        live = [t for t in tickets if t.status != Status.CANCELLED]
        outcome.add(SKIPPED, "Already cancelled", [t.pk for t in tickets if t.status == Status.CANCELLED])
        local = [t for t in live if not t.remote_id and t.sync_state != SyncState.SENDING]
        outcome.add(
            FAILED,
            "Being created in the provider right now: try again in a moment",
            [t.pk for t in live if not t.remote_id and t.sync_state == SyncState.SENDING],
        )
        Ticket.objects.filter(pk__in=[t.pk for t in local]).update(
            status=Status.CANCELLED,
            sync_state=SyncState.CANCELLED,
            next_attempt_at=None,
            updated_at=timezone.now(),
        )
        outcome.add(SUCCEEDED, "Cancelled before it reached the provider", [t.pk for t in local])
        _apply_changes([t for t in live if t.remote_id], {"status": Status.CANCELLED}, outcome)
    return outcome


def bulk_pull(*, ticket_ids: list[int]) -> BulkOutcome:
    """Read the remote state of these tickets now, account by account (tickets/pull.py)."""
    outcome = BulkOutcome()
    tickets = list(Ticket.objects.select_related("account").filter(pk__in=ticket_ids).order_by("pk"))
    outcome.add(SKIPPED, "No longer exists", sorted(set(ticket_ids) - {t.pk for t in tickets}))
    by_account: dict[int, list[Ticket]] = {}
    for ticket in tickets:
        provider_class = ticket.account.provider_class
        if not provider_class.supports(FETCH):
            outcome.add(SKIPPED, provider_class.reason_unsupported(FETCH), [ticket.pk])
        elif not ticket.remote_id:
            outcome.add(SKIPPED, "Not created remotely yet", [ticket.pk])
        elif ticket.sync_state in (SyncState.SENDING, SyncState.CANCELLED):
            outcome.add(SKIPPED, f"Sync is {ticket.get_sync_state_display().lower()}", [ticket.pk])
        else:
            by_account.setdefault(ticket.account_id, []).append(ticket)
    for batch in by_account.values():
        account = batch[0].account
        if not account.enabled or limits.admit(account) is not None:
            outcome.add(FAILED, f"{account.name} is disabled or paused", [t.pk for t in batch])
            continue
        result = pull.pull_tickets(account, batch, pull.PullResult())
        if result.errors:
            outcome.add(FAILED, "; ".join(sorted(set(result.errors)))[:300], [t.pk for t in batch])
        else:
            outcome.add(SUCCEEDED, "Remote state read", [t.pk for t in batch])
    return outcome
