"""The batched push: one account's due rows claimed in one statement, sent concurrently, each
outcome recorded by the pipeline's fenced finish (docs/architecture.md "Sync", Batches).

A push message names an account, not a row (`tasks.push_account`). Its worker claims up to a
batch of the account's due rows with one guarded UPDATE — each row pending -> sending,
attempts + 1, exactly as the single claim in tickets/outbound.py does, so the fence on the
outcome is the same — and sends them on up to `max_in_flight` threads at once. The threads only
make provider calls (with what the adapter needs of the database — the rate-limit bucket, the
shared token, uploads — on their own connections, closed when they end); this thread renews the
rows' lease while calls are in flight and records each outcome as it arrives.

A slow account therefore holds one worker process, whose threads wait, instead of every
process of the pool: the other accounts' nudges keep flowing through the others.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from functools import reduce
from operator import or_
from typing import Any

from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import Q
from django.utils import timezone

from providers.errors import ProviderConfigurationError
from providers.models import ProviderAccount
from tickets import dispatch, limits, outbound
from tickets.attempts import AttemptLog
from tickets.models import SyncAttempt, SyncState
from tickets.outbound import Decision, OutboundKind

log = logging.getLogger(__name__)

#: The most calls one account may have in flight from one batch, whatever its settings say.
MAX_IN_FLIGHT_CEILING = 64


@dataclass
class Sending:
    """One claimed row on its way: what the call left for the finish."""

    row: Any
    operation: str
    attempt_log: AttemptLog = field(default_factory=AttemptLog)
    decision: Decision | None = None
    sent: Any = None
    #: The call was not made (no rate-limit slot soon, or the breaker tripped meanwhile):
    #: the row goes back to pending until then, without spending an attempt.
    put_back_until: datetime | None = None


def max_in_flight(account: ProviderAccount) -> int:
    """How many calls to the account one batch makes at once: the account's `max_in_flight`
    setting (a whole number from 1 to 64), else the provider's, else SYNC_MAX_IN_FLIGHT."""
    chosen = account.settings.get("max_in_flight") if isinstance(account.settings, dict) else None
    valid = isinstance(chosen, int) and not isinstance(chosen, bool) and 1 <= chosen <= MAX_IN_FLIGHT_CEILING
    if not valid:
        chosen = getattr(account.provider_class, "max_in_flight", None) or settings.SYNC_MAX_IN_FLIGHT
    return max(1, min(int(chosen), MAX_IN_FLIGHT_CEILING))


def batch_size(account: ProviderAccount) -> int:
    """Rows claimed at once: no more than the batch's threads can send within the batch budget
    if every call took its full timeout twice (a token call, then the call), so a claimed row
    is not left waiting behind a slow account until the task's time limit."""
    rounds = max(1, int(settings.SYNC_BATCH_BUDGET // max(0.1, 2 * float(account.timeout or 10))))
    return max(1, min(settings.SYNC_BATCH_SIZE, rounds * max_in_flight(account)))


# --- claim --------------------------------------------------------------------------------
def claim_batch(kind: OutboundKind, account_id: int, *, limit: int) -> list:
    """Take up to `limit` of the account's due rows for this worker, in one guarded UPDATE:
    pending, due and claimable -> sending, attempts + 1 (committed before any HTTP). Returns the
    rows claimed, each with the attempt number that fences its outcome."""
    now = timezone.now()
    rows = kind.model.objects.filter(sync_state=SyncState.PENDING, **{f"{kind.related}_id": account_id})
    due = (
        kind.claimable(rows, now)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .order_by("pk").values("pk")[:limit]
    )
    table = connection.ops.quote_name(kind.model._meta.db_table)
    with transaction.atomic():
        if connection.features.has_select_for_update_skip_locked:
            # Two workers claiming the same account skip each other's rows instead of waiting.
            due = due.select_for_update(skip_locked=True, of=("self",))
        due_sql, due_params = due.query.sql_with_params()
        # The outer guard (still pending) makes a row claimed by anyone in between claim nothing
        # here; RETURNING says exactly which rows this statement took, and at which attempt.
        # Only the table name and the ORM's own compiled subquery are formatted in; values are
        # parameters.
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET sync_state = %s, attempts = attempts + 1, sending_since = %s "  # noqa: S608
                f"WHERE id IN ({due_sql}) AND sync_state = %s RETURNING id, attempts",
                [SyncState.SENDING, connection.ops.adapt_datetimefield_value(now), *due_params,
                 SyncState.PENDING],
            )
            claimed = dict(cursor.fetchall())
    if not claimed:
        return []
    loaded = list(kind.model.objects.select_related(kind.related).filter(pk__in=claimed).order_by("pk"))
    for row in loaded:
        row.attempts = claimed[row.pk]  # the fence is the attempt this claim made
    return loaded


# --- send ---------------------------------------------------------------------------------
class Breaker:
    """The account's breaker as this batch sees it: the failures counted when the rows were
    claimed plus this batch's own, so a batch stops sending once it would have tripped it."""

    def __init__(self, account: ProviderAccount) -> None:
        self.threshold = limits.breaker_threshold(account)
        self.failures = account.consecutive_failures
        self.lock = threading.Lock()

    def open(self) -> bool:
        with self.lock:
            return self.failures >= self.threshold

    def record(self, decision: Decision) -> None:
        with self.lock:
            if decision.state == SyncState.SYNCED:
                self.failures = 0
            elif decision.counts_against_account:
                self.failures += 1


def send(kind: OutboundKind, item: Sending, breaker: Breaker) -> None:
    """Make one row's call (on a batch thread) and decide its outcome; the finish is not here."""
    row = item.row
    account = kind.account_of(row)
    if breaker.open():
        item.put_back_until = timezone.now() + limits.breaker_cooldown(account)
        return
    try:
        provider = account.get_provider()
        provider.http.on_exchange = item.attempt_log.add
        limits.govern(provider)
        if not account.enabled:
            raise ProviderConfigurationError(kind.disabled_message(account))
        item.sent = kind.call(provider, row, item.operation)
        item.decision = Decision(SyncState.SYNCED, SyncAttempt.Outcome.SUCCESS)
    except limits.AccountBusy as busy:  # no rate-limit slot soon: the call was not sent
        item.put_back_until = busy.until
        return
    except Exception as exc:  # noqa: BLE001 - every failure is classified and recorded
        item.decision = outbound.decide(kind, exc, row=row, operation=item.operation,
                                        sent=bool(item.attempt_log.exchanges))
    breaker.record(item.decision)


def send_all(kind: OutboundKind, items: list[Sending], *, width: int, breaker: Breaker, done) -> None:
    """Send `items` on `width` threads; `done(item)` runs on this thread as each call ends,
    and the lease of every row not yet done is renewed every third of SYNC_LEASE."""
    waiting: queue.SimpleQueue[Sending] = queue.SimpleQueue()
    for item in items:
        waiting.put(item)
    finished: queue.SimpleQueue[Sending] = queue.SimpleQueue()

    def work() -> None:
        try:
            while True:
                try:
                    item = waiting.get_nowait()
                except queue.Empty:
                    return
                try:
                    send(kind, item, breaker)
                except Exception as exc:  # noqa: BLE001 - a bug here must not lose the row
                    log.exception("Unexpected error while sending %s %s", kind.noun, item.row.pk)
                    item.decision = kind.internal_error(exc, operation=item.operation,
                                                        sent=bool(item.attempt_log.exchanges))
                finished.put(item)
        finally:
            connections.close_all()  # this thread's own connections

    threads = [threading.Thread(target=work, name=f"push-{kind.noun}-{n}", daemon=True)
               for n in range(min(width, len(items)))]
    for thread in threads:
        thread.start()
    in_flight = {item.row.pk: item for item in items}
    renew_every = max(0.5, settings.SYNC_LEASE / 3)
    next_renewal = time.monotonic() + renew_every
    while in_flight:
        try:
            item = finished.get(timeout=max(0.05, next_renewal - time.monotonic()))
        except queue.Empty:
            item = None
        if item is not None:
            del in_flight[item.row.pk]
            done(item)
        if in_flight and time.monotonic() >= next_renewal:
            renew_lease(kind, [each.row for each in in_flight.values()])
            next_renewal = time.monotonic() + renew_every
    for thread in threads:
        thread.join()


def renew_lease(kind: OutboundKind, rows: list) -> int:
    """The rows are still being sent by this worker: push their lease on (fenced, so a row
    the sweeper took back is not renewed for whoever holds it now)."""
    mine = reduce(or_, (Q(pk=row.pk, attempts=row.attempts) for row in rows))
    return kind.model.objects.filter(mine, sync_state=SyncState.SENDING).update(sending_since=timezone.now())


# --- the batch ----------------------------------------------------------------------------
def push_batch(kind: OutboundKind, rows: list) -> Counter:
    """Send claimed rows (all of one account) and record each outcome; returns states counted."""
    states: Counter = Counter()
    account = kind.account_of(rows[0])
    held_until = limits.admit(account, just_read=True)  # the claim read the account just now
    if held_until is not None:  # paused: wait, without spending an attempt
        for row in rows:
            outbound.put_back(kind, row, until=held_until)
        states["paused"] += len(rows)
        return states
    items = []
    for row in rows:
        operation = kind.operation(row)
        kept = kind.kept_here(row, operation)
        if kept is not None:
            outbound.finish(kind, row, operation=operation, decision=kept, attempt_log=AttemptLog())
            states[kept.state] += 1
        else:
            items.append(Sending(row, operation))
    if not items:
        return states
    breaker = Breaker(account)
    width = max_in_flight(account)
    if breaker.open():  # this batch won the breaker's half-open probe: one call decides
        for item in items[1:]:
            item.put_back_until = timezone.now() + limits.breaker_cooldown(account)
            record(kind, item, states)
        items, width = items[:1], 1
        breaker.failures = 0  # the probe itself goes; its failure opens the breaker again

    send_all(kind, items, width=width, breaker=breaker, done=lambda item: record(kind, item, states))
    return states


def record(kind: OutboundKind, item: Sending, states: Counter) -> None:
    if item.put_back_until is not None:
        outbound.put_back(kind, item.row, until=item.put_back_until)
        states["put back"] += 1
        return
    outbound.finish(kind, item.row, operation=item.operation, decision=item.decision,
                    attempt_log=item.attempt_log, sent=item.sent)
    states[item.decision.state] += 1


def push_account(kind: OutboundKind, account_id: int) -> dict[str, int]:
    """Send the account's due rows of this kind, a batch at a time, for up to SYNC_BATCH_BUDGET
    seconds; what is still due then gets a new nudge rather than holding this process."""
    account = ProviderAccount.objects.filter(pk=account_id).first()
    if account is None:
        return {}
    limit = batch_size(account)
    states: Counter = Counter()
    stop_at = time.monotonic() + settings.SYNC_BATCH_BUDGET
    while True:
        rows = claim_batch(kind, account_id, limit=limit)
        if not rows:
            break
        states += push_batch(kind, rows)
        if len(rows) < limit:
            break
        if time.monotonic() >= stop_at:
            dispatch.nudge_accounts([account_id])
            break
    return dict(states)


def account_of_row(kind: OutboundKind, pk: int) -> int | None:
    """The account a row (ticket or reply) belongs to, for a message naming one row."""
    path = f"{kind.related}_id"
    return kind.model.objects.filter(pk=pk).values_list(path, flat=True).first()

