"""What the staff UI shows about a ticket: badges, the sync timeline in plain words, and which
actions the ticket's provider and state allow (with the provider's reason when not)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from providers.base import REPLY, UPDATE
from tickets import problems
from tickets.models import SyncAttempt, SyncState, Ticket
from tickets.pull import inbound_status_reader, remote_status_words

BADGE_CLASSES = {
    SyncState.PENDING: "text-bg-secondary",
    SyncState.SENDING: "text-bg-info",
    SyncState.SYNCED: "text-bg-success",
    SyncState.FAILED: "text-bg-danger",
    SyncState.NEEDS_ATTENTION: "text-bg-warning",
    SyncState.CANCELLED: "text-bg-dark",
    SyncState.LOCAL_ONLY: "text-bg-light border border-warning",
}
#: States in which a worker is about to act: the pages poll while a ticket is in one.
BUSY_STATES = (SyncState.PENDING, SyncState.SENDING)

STATE_SENTENCES = {
    SyncState.PENDING: "Waiting for a worker to send it.",
    SyncState.SENDING: "Being sent right now.",
    SyncState.SYNCED: "In step with the provider.",
    SyncState.FAILED: "The provider refused it; change what it names, then retry.",
    SyncState.NEEDS_ATTENTION: "The create may or may not have reached the provider. Look for it there: "
    "link its id if it exists, or retry if it does not.",
    SyncState.CANCELLED: "Sync was cancelled; nothing more is sent.",
    # LOCAL_ONLY's sentence names the provider's reason (local_only_sentence).
}
ACCOUNT_PROBLEM_SENTENCE = (
    "Not sent: the account {account} has a problem that only a provider admin "
    "can fix. Ask one; the change is kept here."
)

OPERATION_DONE = {
    SyncAttempt.Operation.CREATE: "Created in {label}",
    SyncAttempt.Operation.UPDATE: "Changes sent to {label}",
    SyncAttempt.Operation.FETCH: "Read back from {label}",
    SyncAttempt.Operation.REPLY: "Reply sent to {label}",
    SyncAttempt.Operation.TEST: "Connection to {label} checked",
    SyncAttempt.Operation.SIGN_IN: "Signed in to {label}",
}
OPERATION_NOUN = {
    SyncAttempt.Operation.CREATE: "Create",
    SyncAttempt.Operation.UPDATE: "Update",
    SyncAttempt.Operation.FETCH: "Read-back",
    SyncAttempt.Operation.REPLY: "Reply",
    SyncAttempt.Operation.TEST: "Connection check",
    SyncAttempt.Operation.SIGN_IN: "Signing in",
}


def badge_class(sync_state: str) -> str:
    return BADGE_CLASSES.get(sync_state, "text-bg-secondary")


def safe_remote_url(url: str) -> str:
    """The remote link only when it is plain http(s): it comes from a provider's answer."""
    return url if url.lower().startswith(("https://", "http://")) else ""


def remote_status_label(ticket: Ticket, raw: str | None = None) -> str:
    """The remote status in the console's words, by the account's status map: "Open (OP)"."""
    return remote_status_words(ticket.account, ticket.remote_status if raw is None else raw)


def local_only_sentence(ticket: Ticket) -> str:
    provider_class = ticket.account.provider_class
    return f"Kept here only — {provider_class.reason_kept_here(ticket.local_only_fields or [])}"


def remote_difference(ticket: Ticket) -> str:
    """For a change kept here only: what the provider still has, when it differs."""
    if ticket.sync_state != SyncState.LOCAL_ONLY or not ticket.remote_status:
        return ""
    if ticket.account.provider_class.supports(UPDATE) and "status" not in (ticket.local_only_fields or []):
        return ""  # the status itself is sent
    if inbound_status_reader(ticket.account)(ticket.remote_status) == ticket.status:
        return ""
    label = ticket.account.provider_class.label
    return (
        f"{label} still has it {remote_status_label(ticket)}; the console has {ticket.get_status_display()}."
    )


def state_sentence(ticket: Ticket) -> str:
    """The sync state in plain words, addressed to whoever can act on it."""
    if ticket.sync_state == SyncState.LOCAL_ONLY:
        return local_only_sentence(ticket)
    if ticket.sync_state == SyncState.FAILED and ticket.account_problem:
        return ACCOUNT_PROBLEM_SENTENCE.format(account=ticket.account.name)
    account = ticket.account
    paused = account.paused_until is not None and account.paused_until > timezone.now()
    if ticket.sync_state == SyncState.PENDING and paused:
        return f"Waiting: {problems.paused_sentence(account)}"
    return STATE_SENTENCES.get(ticket.sync_state, "")


def sync_summary(ticket: Ticket, *, replies_busy: bool = False) -> dict[str, Any]:
    """The sync fields the pages poll for (no secrets: states, the remote reference, an error)."""
    return {
        "replies_busy": replies_busy,
        "id": ticket.pk,
        "reference": ticket.reference,
        "sync_state": ticket.sync_state,
        "label": ticket.get_sync_state_display(),
        "badge_class": badge_class(ticket.sync_state),
        "busy": ticket.sync_state in BUSY_STATES,
        "sentence": state_sentence(ticket),
        "remote_difference": remote_difference(ticket),
        "remote_status": remote_status_label(ticket),
        "account_problem": ticket.account_problem,
        "remote_number": ticket.remote_number or ticket.remote_id,
        "remote_url": safe_remote_url(ticket.remote_url),
        "last_error": ticket.last_error,
    }


@dataclass(frozen=True)
class TimelineEntry:
    when: Any
    sentence: str
    outcome: str
    detail: str
    error: str


def describe_attempt(attempt: SyncAttempt, label: str) -> str:
    """One SyncAttempt row as a sentence an agent understands."""
    noun = OPERATION_NOUN.get(attempt.operation, attempt.operation)
    if attempt.operation == SyncAttempt.Operation.SIGN_IN:  # a token call the adapter marked
        if attempt.outcome == SyncAttempt.Outcome.SUCCESS:
            return f"Signed in to {label}"
        return f"Signing in to {label} failed"
    if attempt.outcome == SyncAttempt.Outcome.SUCCESS:
        return OPERATION_DONE.get(attempt.operation, f"{noun} done in {{label}}").format(label=label)
    if attempt.outcome == SyncAttempt.Outcome.RETRY:
        return f"{noun} hit a passing problem at {label}; it will be retried"
    if attempt.outcome == SyncAttempt.Outcome.UNKNOWN:
        return f"{noun} sent to {label}, but its answer was lost: it may have been applied"
    return f"{noun} refused by {label}"


def timeline(ticket: Ticket, *, limit: int = 50) -> list[TimelineEntry]:
    """The ticket's most recent remote calls, oldest first."""
    label = ticket.account.provider_class.label
    attempts = list(ticket.attempts_log.order_by("-started_at", "-id")[:limit])
    entries = []
    for attempt in reversed(attempts):
        detail = []
        if attempt.http_status:
            detail.append(f"HTTP {attempt.http_status}")
        if attempt.duration_ms:
            detail.append(f"{attempt.duration_ms} ms")
        if attempt.revision:
            detail.append(f"revision {attempt.revision}")
        entries.append(
            TimelineEntry(
                when=attempt.started_at,
                sentence=describe_attempt(attempt, label),
                outcome=attempt.outcome,
                detail=", ".join(detail),
                error=attempt.error,
            )
        )
    return entries


@dataclass(frozen=True)
class Action:
    name: str
    label: str
    available: bool
    reason: str = ""


def ticket_actions(ticket: Ticket, user) -> dict[str, Action]:
    """The actions an agent may take on `ticket` now; unavailable ones say why."""
    provider_class = ticket.account.provider_class
    can_change = user.has_perm("tickets.change_ticket")
    no_permission = "You do not have permission to change tickets."
    actions: dict[str, Action] = {}

    def add(name: str, label: str, available: bool, reason: str = "") -> None:
        if not can_change:
            available, reason = False, no_permission
        actions[name] = Action(name, label, available, "" if available else reason)

    updatable = not ticket.remote_id or provider_class.supports(UPDATE)
    update_reason = provider_class.reason_unsupported(UPDATE)
    add("edit", "Edit", updatable, update_reason)
    add("status", "Change status", updatable, update_reason)
    add("reply", "Reply", provider_class.supports(REPLY), provider_class.reason_unsupported(REPLY))
    # The rest depend on the sync state and are only listed where they apply.
    if ticket.sync_state in (SyncState.FAILED, SyncState.NEEDS_ATTENTION):
        add("retry", "Retry sync", True)
    if ticket.sync_state == SyncState.NEEDS_ATTENTION and not ticket.remote_id:
        add("link", "Link a remote id", True)
    if ticket.sync_state in (SyncState.PENDING, SyncState.FAILED, SyncState.NEEDS_ATTENTION):
        add("cancel", "Cancel sync", True)
    return actions
