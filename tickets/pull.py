"""Pull: read remote tickets back and bring their status into the console.

For providers that can be read (Motadata: one GET per ticket; Keliweb: get-ticket; Kapture:
batches of up to 50 ids). Remote status comes back through the account's inbound status map.

Conflicts are judged against `Ticket.synced_fields`, what both sides held at the last sync:
- only the remote changed -> applied locally, without a revision bump (nothing is echoed back);
- the console changed the status too (unsent) -> the ticket needs attention, with both values
  in `last_error`; nothing is overwritten on either side;
- the console's copy was changed in a way the provider cannot take (`local_only`, e.g. Keliweb
  cannot update a ticket) -> the console's value stays and the remote status is recorded, so
  the ticket page shows the difference ("Keliweb still has it Open") instead of reverting.

Where the read answer carries the ticket's conversation (Keliweb), replies written on the
provider's side are stored too (tickets/conversation.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection
from django.db.models import F, Q
from django.utils import timezone

from console.crypto import CredentialsUnreadable
from providers.base import FETCH, UPDATE, RemoteState
from providers.errors import ProviderAuthError, ProviderConfigurationError, ProviderError, ProviderRateLimited
from providers.errors import ProviderTransientError as Transient
from providers.models import ProviderAccount
from providers.registry import PROVIDERS, is_configurable
from tickets import conversation, dispatch, limits, problems
from tickets.attempts import AttemptLog
from tickets.models import Status, SyncAttempt, SyncState, Ticket

log = logging.getLogger(__name__)
UNHEALTHY = (ProviderAuthError, ProviderRateLimited, Transient)
OUT_OF_TIME = "skipped: this run's time budget is spent"


@dataclass
class PullResult:
    fetched: int = 0
    applied: int = 0
    conflicts: int = 0
    errors: list[str] = field(default_factory=list)
    skipped: str = ""
    #: Replies written on the provider's side, stored for the first time (tickets/conversation.py).
    replies_received: int = 0

    def as_dict(self) -> dict:
        return {
            "fetched": self.fetched,
            "applied": self.applied,
            "conflicts": self.conflicts,
            "errors": self.errors,
            "skipped": self.skipped,
            "replies_received": self.replies_received,
        }


def fetchable_accounts():
    """Enabled accounts whose provider can read tickets back: by kind, or, for a configurable
    kind (generic), by each account's own configuration."""
    configurable = [kind for kind in PROVIDERS if is_configurable(kind)]
    kinds = [
        kind
        for kind in PROVIDERS
        if kind not in configurable and ProviderAccount(kind=kind).provider_class.supports(FETCH)
    ]
    configured = [
        account.pk
        for account in ProviderAccount.objects.filter(enabled=True, kind__in=configurable).only(
            "pk", "kind", "api_config"
        )
        if account.provider_class.supports(FETCH)
    ]
    return ProviderAccount.objects.filter(Q(kind__in=kinds) | Q(pk__in=configured), enabled=True)


def publish_pulls(accounts=None) -> int:
    ids = list((accounts if accounts is not None else fetchable_accounts()).values_list("pk", flat=True))
    dispatch.pull_accounts(ids)
    return len(ids)


def pull_account_by_id(account_id: int) -> dict:
    account = ProviderAccount.objects.filter(pk=account_id).first()
    if account is None:
        return PullResult(skipped="no such account").as_dict()
    return pull_account(account=account).as_dict()


def pull_account(*, account: ProviderAccount, limit: int | None = None) -> PullResult:
    """Fetch the account's remote tickets (oldest pulled first) and apply what changed."""
    result = PullResult()
    provider_class = account.provider_class
    if not provider_class.supports(FETCH):
        result.skipped = provider_class.reason_unsupported(FETCH)
        return result
    if not account.enabled:
        result.skipped = "account disabled"
        return result
    if limits.admit(account) is not None:
        result.skipped = "account paused"
        return result
    tickets = list(
        Ticket.objects.filter(account=account)
        .exclude(remote_id="")
        .exclude(sync_state__in=[SyncState.SENDING, SyncState.CANCELLED])
        .order_by(F("pulled_at").asc(nulls_first=True), "pk")[: limit or settings.SYNC_PULL_LIMIT]
    )
    return pull_tickets(account, tickets, result)


def pull_tickets(account: ProviderAccount, tickets: list[Ticket], result: PullResult) -> PullResult:
    """Fetch these tickets of one account in batches and apply what changed remotely."""
    size = max(1, account.provider_class.fetch_batch_size)
    batches = [tickets[i : i + size] for i in range(0, len(tickets), size)]
    if not batches:
        return result
    stop = threading.Event()  # an unhealthy answer stops the remaining calls of this run
    # Past the time budget the rest waits for the next run (oldest pulled first), so a run
    # stays well inside the task time limit whatever the rate limit allows.
    deadline = time.monotonic() + settings.SYNC_PULL_TIME_BUDGET
    if connection.in_atomic_block:
        # Inside the caller's transaction (a bulk job applies each chunk in one): pool threads
        # would wait for its write lock (all of SQLite) until the busy timeout, and could not see
        # its rows. Fetch here, one call after another, on the caller's connection.
        outcomes = [fetch_batch(account, batch, stop, deadline, own_connection=False) for batch in batches]
    else:
        workers = max(1, min(settings.SYNC_PULL_CONCURRENCY, 4, len(batches)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pull") as pool:
            outcomes = list(pool.map(lambda batch: fetch_batch(account, batch, stop, deadline), batches))
    for batch, states, error, attempt_log in outcomes:
        record_fetch(account, batch, error, attempt_log)
        if error == OUT_OF_TIME:
            continue
        if error is not None:
            result.errors.append(error)
            continue
        result.fetched += len(batch)
        by_remote_id = {t.remote_id: t for t in batch}
        for state in states:
            ticket = by_remote_id.get(state.remote_id)
            if ticket is None:
                continue
            outcome = apply_remote_status(
                ticket_id=ticket.pk, remote_status=state.remote_status, read_before=ticket
            )
            result.applied += outcome == "applied"
            result.conflicts += outcome == "conflict"
            if state.replies is not None:  # independent of the status: always recorded
                result.replies_received += conversation.record_remote_replies(
                    ticket_id=ticket.pk, remote_replies=state.replies
                )
        Ticket.objects.filter(pk__in=[t.pk for t in batch]).update(pulled_at=timezone.now())
    return result


def fetch_batch(
    account: ProviderAccount,
    batch: list[Ticket],
    stop: threading.Event,
    deadline: float,
    *,
    own_connection: bool = True,
) -> tuple[list[Ticket], list[RemoteState], str | None, AttemptLog]:
    """One fetch call, on a pool thread (its own database connection, closed at the end) or,
    with `own_connection=False`, on the caller's."""
    attempt_log = AttemptLog()
    try:
        if time.monotonic() > deadline:
            return batch, [], OUT_OF_TIME, attempt_log
        if stop.is_set():
            return batch, [], "skipped: an earlier call of this pull failed", attempt_log
        provider = account.get_provider()
        provider.http.on_exchange = attempt_log.add
        limits.govern(provider)
        states = provider.fetch(batch)
        return batch, states, None, attempt_log
    except limits.AccountBusy:
        return batch, [], "skipped: the account's rate limit has no slot soon", attempt_log
    except (ProviderError, ProviderConfigurationError, CredentialsUnreadable) as exc:
        if isinstance(exc, UNHEALTHY):
            stop.set()
            limits.record_failure(account, exc.message)
        if problems.is_account_level(exc):
            stop.set()
            problems.report(account, problems.account_message(exc, account=account))
        return batch, [], getattr(exc, "message", str(exc)), attempt_log
    finally:
        if own_connection:
            connection.close()


def record_fetch(
    account: ProviderAccount, batch: list[Ticket], error: str | None, attempt_log: AttemptLog
) -> None:
    if error and error.startswith("skipped:") and not attempt_log.exchanges:
        return
    outcome = SyncAttempt.Outcome.FAILED if error else SyncAttempt.Outcome.SUCCESS
    SyncAttempt.objects.bulk_create(
        attempt_log.rows(
            account_id=account.pk,
            operation=SyncAttempt.Operation.FETCH,
            outcome=outcome,
            message=error or "",
            ticket=batch[0] if len(batch) == 1 else None,
        )
    )
    if not error:
        limits.record_success(account)


def inbound_status_reader(account: ProviderAccount) -> Callable[[str], str | None]:
    """raw remote status -> console status, by the account's map (no credentials needed)."""
    configured = (account.status_map or {}).get("inbound")
    inbound = configured or account.provider_class.default_status_map["inbound"]
    return inbound.get


REMOTE_STATUS_MAX_LENGTH = Ticket._meta.get_field("remote_status").max_length


def remote_status_words(account: ProviderAccount, raw: str) -> str:
    """A remote status in the console's words by the account's map: "Resolved (RS)"; the raw
    value alone when the map does not know it or says the same."""
    console = inbound_status_reader(account)(raw)
    label = Status(console).label if console in Status.values else ""
    if not raw or not label or label.lower() == raw.lower():
        return raw
    return f"{label} ({raw})"


def apply_remote_status(*, ticket_id: int, remote_status: str, read_before: Ticket | None = None) -> str:
    """Bring a remote status into the ticket; returns unchanged, applied, conflict, skipped or
    refused (a value longer than any status, which the remote_status column cannot hold).

    `read_before` is the ticket as it was before the remote state was read: if a push
    finished in between, the remote answer may predate it, so it is left to the next pull.
    """
    raw = str(remote_status or "").strip()
    if len(raw) > REMOTE_STATUS_MAX_LENGTH:
        log.warning("Ticket %s: ignored a remote status of %d characters.", ticket_id, len(raw))
        return "refused"
    ticket = Ticket.objects.select_related("account").filter(pk=ticket_id).first()
    if ticket is None or not raw or ticket.sync_state in (SyncState.SENDING, SyncState.CANCELLED):
        return "skipped"  # a worker is sending it: judged on the next pull
    if ticket.settle_until and ticket.settle_until > timezone.now():
        # An unanswered update of ours may still be landing: what the provider shows now may
        # be that, not a change made there. Judged after the ticket's next push.
        return "skipped"
    same = Ticket.objects.filter(
        pk=ticket.pk, revision=ticket.revision, sync_state=ticket.sync_state, status=ticket.status
    )
    status_kept_here = "status" in (ticket.local_only_fields or []) or not (
        ticket.account.provider_class.supports(UPDATE)
    )
    if ticket.sync_state == SyncState.LOCAL_ONLY and status_kept_here:
        # Kept here on purpose: never overwritten by the provider's (older) value, only noted.
        if raw != ticket.remote_status:
            same.update(remote_status=raw)
        return "unchanged"
    if read_before is not None and (ticket.synced_revision, ticket.last_synced_at) != (
        read_before.synced_revision,
        read_before.last_synced_at,
    ):
        return "skipped"
    baseline = ticket.synced_fields or {}
    baseline_raw = baseline.get("remote_status", ticket.remote_status)
    if raw == baseline_raw:
        return "unchanged"
    remote_console = inbound_status_reader(ticket.account)(raw)
    synced_status = baseline.get("status") or (None if ticket.has_unsynced_changes else ticket.status)
    # Guarded (`same`): a concurrent edit or claim makes a write do nothing; the next pull judges again.
    agreed = {"status": synced_status or ticket.status, "remote_status": raw}
    if remote_console is None or remote_console in (ticket.status, synced_status):
        # Unmapped, already what the console has, or no change in console terms: record it.
        if remote_console == ticket.status:
            agreed["status"] = ticket.status
        same.update(remote_status=raw, synced_fields=agreed)
        return "unchanged"
    console_changed = ticket.has_unsynced_changes and ticket.status != synced_status
    label = ticket.account.provider_class.label
    if console_changed:
        here, there = ticket.get_status_display(), remote_status_words(ticket.account, raw)
        message = (
            f"Status changed on both sides since the last sync: the console has {here}, "
            f"{label} now has {there}. Nothing was overwritten. Retry to send the console's "
            f"{here}, or set the status to {Status(remote_console).label} and retry."
        )
        changed = same.update(
            sync_state=SyncState.NEEDS_ATTENTION, remote_status=raw, last_error=message, next_attempt_at=None
        )
        return "conflict" if changed else "skipped"
    changed = same.update(
        status=remote_console,
        remote_status=raw,
        synced_fields={"status": remote_console, "remote_status": raw},
    )
    return "applied" if changed else "skipped"
