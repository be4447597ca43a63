"""The batched push: an account's due rows claimed a batch per statement, sent concurrently,
each outcome recorded by the pipeline's fenced finish (docs/architecture.md "Sync", Batches).

A push message names an account, not a row (`tasks.push_account`). Its worker claims the
account's due rows with guarded UPDATEs — each row pending -> sending, attempts + 1, the
attempt that fences the row's outcome (tickets/outbound.py) — as many at a time as it has free
threads (up to `max_in_flight`), and sends them at once. The threads only make provider calls
(with what the adapter needs of the database — the rate-limit bucket, the shared token,
uploads — on their own connections, closed when they end); this thread renews the rows' lease
while calls are in flight and records each outcome as it arrives.

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
from datetime import datetime, timedelta
from functools import reduce
from operator import or_
from typing import Any

from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import Q
from django.utils import timezone

from providers import http
from providers.errors import ProviderConfigurationError
from providers.models import ProviderAccount
from tickets import dispatch, limits, outbound
from tickets.attempts import AttemptLog
from tickets.models import SyncAttempt, SyncState
from tickets.outbound import Decision, OutboundKind, Outcome

log = logging.getLogger(__name__)

#: The most calls one account may have in flight from one batch, whatever its settings say
#: (as many as its Session keeps connections for).
MAX_IN_FLIGHT_CEILING = http.MAX_CALLS_IN_FLIGHT
#: How long the task's thread waits, after a call ends, for the others of its wave: their
#: outcomes are then written together and their threads refilled by one claim (a statement
#: or two per wave instead of per call), for at most this much delay to any outcome.
GATHER_SECONDS = 0.02
#: When tickets trickle in (the last claim was not full), a wave's outcomes are recorded no
#: sooner than this after its claim, so the next claim finds the rows saved meanwhile: fewer,
#: fuller claims and finishes (their statements cost the same for 1 row as for 10), for at
#: most this much delay to a ticket. The wave's rows stay `sending` meanwhile, so a create
#: still sees the run as live and publishes no nudge (dispatch.accounts_covered).
TRICKLE_PACE_SECONDS = 0.1
#: A call that ended this soon after it began (a provider answering at once) has the task's
#: thread wait, within GATHER_SECONDS, for its whole wave rather than half: quick calls end
#: together, and the finish and claim that follow then run while no call competes with them
#: for the interpreter lock (their statements had waited three times their own CPU for it).
#: Slower calls (any provider across the internet) keep the refill at half the threads, so
#: their waves overlap.
QUICK_CALL_SECONDS = 0.03


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
    #: The rate-limit slot the batch reserved for this call (None: the call reserves its own).
    slot_at: datetime | None = None
    #: When its thread began the call (time.monotonic()).
    started_at: float = 0.0


def max_in_flight(account: ProviderAccount) -> int:
    """How many calls to the account one batch makes at once: the account's `max_in_flight`
    setting (a whole number from 1 to 64), else the provider's, else SYNC_MAX_IN_FLIGHT."""
    chosen = account.settings.get("max_in_flight") if isinstance(account.settings, dict) else None
    valid = isinstance(chosen, int) and not isinstance(chosen, bool) and 1 <= chosen <= MAX_IN_FLIGHT_CEILING
    if not valid:
        chosen = getattr(account.provider_class, "max_in_flight", None) or settings.SYNC_MAX_IN_FLIGHT
    return max(1, min(int(chosen), MAX_IN_FLIGHT_CEILING))


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
        .order_by("pk")
        .values("pk")[:limit]
    )
    table = connection.ops.quote_name(kind.model._meta.db_table)
    with transaction.atomic():
        if connection.features.has_select_for_update_skip_locked:
            # Two workers claiming the same account skip each other's rows instead of waiting.
            due = due.select_for_update(skip_locked=True, of=("self",))
        due_sql, due_params = due.query.sql_with_params()
        # The due rows are chosen once, in a materialized CTE: as a plain `IN (subquery)`,
        # PostgreSQL may run a LIMIT ... SKIP LOCKED subquery again for each row it updates,
        # each run skipping the rows the last one locked, and so claim more than `limit`.
        # The outer guard (still pending) makes a row claimed by anyone in between claim nothing
        # here; RETURNING says exactly which rows this statement took, and at which attempt.
        # Only the table name and the ORM's own compiled subquery are formatted in; values are
        # parameters.
        with connection.cursor() as cursor:
            cursor.execute(
                f"WITH due AS MATERIALIZED ({due_sql}) "  # noqa: S608
                f"UPDATE {table} SET sync_state = %s, attempts = attempts + 1, lease_renewed_at = %s "
                f"WHERE id IN (SELECT * FROM due) AND sync_state = %s RETURNING id, attempts",
                [
                    *due_params,
                    SyncState.SENDING,
                    connection.ops.adapt_datetimefield_value(now),
                    SyncState.PENDING,
                ],
            )
            claimed = dict(cursor.fetchall())
    if not claimed:
        return []
    # The rows, then their account once: one instance shared by the batch rather than a copy
    # per row joined in (building those copies, JSON maps and all, was half the claim's CPU).
    account = ProviderAccount.objects.filter(pk=account_id).first()
    if account is None:  # deleted since the claim, and its rows with it
        return []
    *hops, last = kind.related.split("__")
    rows = kind.model.objects.filter(pk__in=claimed).order_by("pk")
    loaded = list(rows.select_related("__".join(hops)) if hops else rows)
    for row in loaded:
        row.attempts = claimed[row.pk]  # the fence is the attempt this claim made
        holder = reduce(getattr, hops, row)  # the row itself, or the reply's ticket
        setattr(holder, last, account)
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
        limits.govern(provider, slot_at=item.slot_at)
        if not account.enabled:
            raise ProviderConfigurationError(kind.disabled_message(account))
        item.sent = kind.call(provider, row, item.operation)
        item.decision = Decision(SyncState.SYNCED, SyncAttempt.Outcome.SUCCESS)
    except limits.AccountBusy as busy:  # no rate-limit slot soon: the call was not sent
        item.put_back_until = busy.until
        return
    except Exception as exc:  # noqa: BLE001 - every failure is classified and recorded
        item.decision = outbound.decide(
            kind, exc, row=row, operation=item.operation, sent=bool(item.attempt_log.exchanges)
        )
    breaker.record(item.decision)


class Senders:
    """Up to `width` threads making one account's calls; the task's thread feeds them rows and
    takes the outcomes back. Each thread's database connections are closed when it ends."""

    def __init__(self, kind: OutboundKind, width: int, breaker: Breaker) -> None:
        self.kind, self.width, self.breaker = kind, width, breaker
        self.todo: queue.SimpleQueue[Sending | None] = queue.SimpleQueue()
        self.finished: queue.SimpleQueue[Sending] = queue.SimpleQueue()
        self.threads: list[threading.Thread] = []

    def submit(self, item: Sending) -> None:
        self.todo.put(item)
        if len(self.threads) < self.width:
            thread = threading.Thread(
                target=self.work, name=f"push-{self.kind.noun}-{len(self.threads)}", daemon=True
            )
            thread.start()
            self.threads.append(thread)

    def work(self) -> None:
        try:
            while (item := self.todo.get()) is not None:
                item.started_at = time.monotonic()
                try:
                    send(self.kind, item, self.breaker)
                except Exception as exc:  # noqa: BLE001 - a bug here must not lose the row
                    log.exception("Unexpected error while sending %s %s", self.kind.noun, item.row.pk)
                    item.decision = self.kind.internal_error(
                        exc, operation=item.operation, sent=bool(item.attempt_log.exchanges)
                    )
                self.finished.put(item)
        finally:
            connections.close_all()  # this thread's own connections

    def take_finished(self, *, timeout: float, want: int = 1, wave: int = 1) -> list[Sending]:
        """The calls that ended: waits up to `timeout` for one, then up to GATHER_SECONDS more
        until `want` have ended, and takes all that are there. When that first call was quick
        (QUICK_CALL_SECONDS), it waits for the whole `wave` instead."""
        try:
            items = [self.finished.get(timeout=max(0.05, timeout))]
        except queue.Empty:
            return []
        if time.monotonic() - items[0].started_at < QUICK_CALL_SECONDS:
            want = max(want, wave)
        gather_until = time.monotonic() + GATHER_SECONDS
        while True:
            try:
                items.append(self.finished.get_nowait())
                continue
            except queue.Empty:
                pass
            left = gather_until - time.monotonic()
            if len(items) >= want or left <= 0:
                return items
            try:
                items.append(self.finished.get(timeout=left))
            except queue.Empty:
                return items

    def close(self) -> None:
        for _ in self.threads:
            self.todo.put(None)
        for thread in self.threads:
            thread.join()


def renew_lease(kind: OutboundKind, rows: list) -> int:
    """The rows are still being sent by this worker: push their lease on (fenced, so a row
    the sweeper took back is not renewed for whoever holds it now)."""
    mine = reduce(or_, (Q(pk=row.pk, attempts=row.attempts) for row in rows))
    return kind.model.objects.filter(mine, sync_state=SyncState.SENDING).update(
        lease_renewed_at=timezone.now()
    )


# --- the account's run --------------------------------------------------------------------
class AccountRun:
    """One nudge's work for one account and kind: rows are claimed only as threads come free,
    so what a claim takes is sent at once — a worker killed mid-run leaves at most
    `max_in_flight` rows whose outcome is unknown, not a queue of rows it never sent."""

    def __init__(self, kind: OutboundKind, account: ProviderAccount) -> None:
        self.kind, self.account_id = kind, account.pk
        self.width = max_in_flight(account)
        self.states: Counter = Counter()
        self.in_flight: dict[int, Sending] = {}
        #: Rows this run sent back to wait (retries, put-backs, edits meanwhile), and when each
        #: is due: published once when the run ends, not a message per row.
        self.due_again: dict[int, datetime] = {}
        self.breaker: Breaker | None = None
        self.senders: Senders | None = None
        #: The last claim came back full: more rows may be due.
        self.more = True
        #: Claim no more: the account waits (paused, tripped, no rate-limit slot soon), the
        #: run is the breaker's probe, or its time is up.
        self.stopped = False

    def run(self) -> dict[str, int]:
        if self.another_run_is_sending():
            return {"left to the account's run in progress": 1}
        stop_at = time.monotonic() + settings.SYNC_BATCH_BUDGET
        renew_every = max(0.5, settings.SYNC_LEASE / 3)
        next_renewal = time.monotonic() + renew_every
        out_of_time = False
        claimed_at = 0.0
        try:
            while True:
                free = self.width - len(self.in_flight)
                claimed_nothing = False
                # With calls in flight, refill once half the threads are free (a claim then
                # takes several rows) and only while claims come back full; with none in
                # flight, always look again: the run ends when a claim finds nothing due.
                if (
                    not self.stopped
                    and free
                    and (not self.in_flight or (self.more and free >= max(1, self.width // 2)))
                ):
                    if time.monotonic() < stop_at:
                        claimed_at = time.monotonic()
                        rows = claim_batch(self.kind, self.account_id, limit=free)
                        claimed_nothing = not rows
                        self.start(rows, asked=free)
                    else:
                        self.stopped = out_of_time = True
                if not self.in_flight:
                    if self.stopped or claimed_nothing:
                        break
                    continue
                # Wait (briefly) for as many as leave half the threads free: the refill above
                # then takes them all in one claim, and their outcomes go in one finish.
                want = max(1, len(self.in_flight) - (self.width - self.width // 2))
                ended = self.senders.take_finished(
                    timeout=next_renewal - time.monotonic(), want=want, wave=len(self.in_flight)
                )
                pace = claimed_at + TRICKLE_PACE_SECONDS - time.monotonic()
                if not self.more and not self.stopped and len(ended) == len(self.in_flight) and pace > 0:
                    time.sleep(pace)
                self.record_group(ended)
                if self.in_flight and time.monotonic() >= next_renewal:
                    renew_lease(self.kind, [each.row for each in self.in_flight.values()])
                    next_renewal = time.monotonic() + renew_every
        finally:
            if self.senders is not None:
                self.senders.close()
            self.publish_due_again()
        if out_of_time:  # rows may still be due: another nudge, rather than holding this process
            dispatch.nudge_accounts([self.account_id])
        return dict(self.states)

    def another_run_is_sending(self) -> bool:
        """A live run (rows `sending` under a lease still renewed) already serves the account:
        this nudge returns at once instead of holding a second process. That run looks for
        due rows again before it ends, so rows made due meanwhile are not left behind."""
        live_since = timezone.now() - timedelta(seconds=settings.SYNC_LEASE)
        return self.kind.model.objects.filter(
            sync_state=SyncState.SENDING,
            lease_renewed_at__gt=live_since,
            **{f"{self.kind.related}_id": self.account_id},
        ).exists()

    def start(self, rows: list, *, asked: int) -> None:
        """Hand newly claimed rows to the threads (or put them back when the account waits)."""
        self.more = len(rows) == asked
        if not rows:
            return
        account = self.kind.account_of(rows[0])
        held_until = limits.admit(account, just_read=True)  # the claim read the account just now
        if self.breaker is None:
            self.breaker = Breaker(account)
            self.senders = Senders(self.kind, self.width, self.breaker)
            if held_until is None and self.breaker.open():
                # This run won the breaker's half-open probe: one call decides.
                self.stopped, self.width, self.breaker.failures = True, 1, 0
                until = timezone.now() + limits.breaker_cooldown(account)
                for row in rows[1:]:
                    self.put_back(row, until)
                rows = rows[:1]
        elif held_until is None and self.breaker.open():  # this run's own failures tripped it
            held_until = timezone.now() + limits.breaker_cooldown(account)
        if held_until is not None:  # paused: wait, without spending an attempt
            self.stopped = True
            for row in rows:
                self.put_back(row, held_until)
            return
        kept_here, sending = [], []
        for row in rows:
            operation = self.kind.operation(row)
            kept = self.kind.kept_here(row, operation)
            if kept is not None:
                kept_here.append(Outcome(row, operation, kept))
                continue
            sending.append(Sending(row, operation))
        # One rate-limit statement for the batch's calls, not one per call; a call left
        # without a slot here (none soon enough) asks for its own, as one sent alone does.
        try:
            slots = limits.reserve_slots(account, len(sending)) if limits.bucket_usable(account) else []
        except limits.AccountBusy:
            slots = []
        for item, slot_at in zip(sending, slots, strict=False):
            item.slot_at = slot_at
        for item in sending:
            self.in_flight[item.row.pk] = item
            self.senders.submit(item)
        if kept_here:
            self.due_again.update(outbound.finish_group(self.kind, kept_here).due_again)
            self.states.update(outcome.decision.state for outcome in kept_here)

    def put_back(self, row, until: datetime) -> None:
        if outbound.put_back(self.kind, row, until=until):
            self.due_again[row.pk] = until
        self.states["put back"] += 1

    def publish_due_again(self) -> None:
        """The rows this run sent back to wait and that still wait, published together: one
        account nudge per second of countdown (outbound.publish_due) instead of one per row.
        A row this run sent again meanwhile needs none."""
        if not self.due_again:
            return
        waiting = set(
            self.kind.model.objects.filter(pk__in=self.due_again, sync_state=SyncState.PENDING).values_list(
                "pk", flat=True
            )
        )
        outbound.publish_due(self.kind, {pk: when for pk, when in self.due_again.items() if pk in waiting})

    def record_group(self, items: list[Sending]) -> None:
        """Record the outcomes of calls that ended together — one fenced UPDATE per outcome
        state and one bulk_create of their SyncAttempt rows (outbound.finish_group) — then feed
        the account's breaker once for them: a success closes it (one statement, not one per
        row) and the unhealthy failures after the group's last success count towards a trip,
        as one by one they would."""
        outcomes = []
        for item in items:
            del self.in_flight[item.row.pk]
            if item.put_back_until is not None:  # no rate-limit slot soon, or the breaker tripped
                self.stopped = True  # the next rows would only be put back too
                self.put_back(item.row, item.put_back_until)
                continue
            outcomes.append(Outcome(item.row, item.operation, item.decision, item.attempt_log, item.sent))
        if not outcomes:
            return
        recorded = outbound.finish_group(self.kind, outcomes)
        self.due_again.update(recorded.due_again)
        applied = recorded.applied
        healthy_at, unhealthy = None, []
        for outcome in outcomes:
            decision = outcome.decision
            self.states[decision.state] += 1
            if outcome.row.pk not in applied:
                continue
            if decision.state == SyncState.SYNCED:
                healthy_at, unhealthy = outcome, []
            elif decision.counts_against_account:
                unhealthy.append(outcome)
        if healthy_at is not None:
            limits.record_success(self.kind.account_of(healthy_at.row), just_read=True)
        for outcome in unhealthy:
            limits.record_failure(self.kind.account_of(outcome.row), outcome.decision.message)


def push_account(kind: OutboundKind, account_id: int) -> dict[str, int]:
    """Send the account's due rows of this kind, `max_in_flight` at a time, for up to
    SYNC_BATCH_BUDGET seconds; returns how many rows ended in each state."""
    account = ProviderAccount.objects.filter(pk=account_id).first()
    if account is None:
        return {}
    return AccountRun(kind, account).run()


def account_of_row(kind: OutboundKind, pk: int) -> int | None:
    """The account a row (ticket or reply) belongs to, for a message naming one row."""
    path = f"{kind.related}_id"
    return kind.model.objects.filter(pk=pk).values_list(path, flat=True).first()
