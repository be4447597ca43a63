"""Per-account limits shared by every worker: a rate limit and a circuit breaker.

Both live in the ProviderAccount row, so every process on every machine sees one state:
- the rate limit is a token bucket of `rate_limit` requests/s holding `rate_burst` requests,
  kept as GCRA: a theoretical arrival time (`next_request_at`) moved on by 1/rate with one
  guarded UPDATE per request; a request passes at once while that time is less than
  (burst - 1)/rate ahead of now, so a burst goes together and what follows is spaced;
- the breaker counts consecutive failures that say the service is unhealthy (auth, transient,
  rate limited); at the account's threshold it sets `paused_until`. While paused nothing is
  sent. When the cool-down is over one caller wins a guarded UPDATE and makes the single
  probe call (half-open); its success closes the breaker, its failure re-opens it.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, DateTimeField, ExpressionWrapper, F, Q, Value, When
from django.utils import timezone

from providers.bounds import engine_setting, rate_burst_problem, rate_limit_problem
from providers.models import ProviderAccount
from tickets import dispatch
from tickets.models import Reply, SyncState, Ticket

#: How far in the future "until resumed" is.
INDEFINITELY = timedelta(days=3650)


class AccountBusy(Exception):
    """The account's rate limit has no slot soon enough; come back at `until`."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"rate limited until {until.isoformat()}")
        self.until = until


# --- settings ----------------------------------------------------------------------------
# A stored value the form would refuse (NaN, 1e999, "5") falls back to the default: the
# breaker runs before the push's error handling, so it must not raise.
def breaker_threshold(account: ProviderAccount) -> int:
    value = engine_setting(account.settings, "breaker_threshold")
    return max(1, int(value or settings.SYNC_BREAKER_THRESHOLD))


def breaker_cooldown(account: ProviderAccount) -> timedelta:
    value = engine_setting(account.settings, "breaker_cooldown")
    return timedelta(seconds=float(value or settings.SYNC_BREAKER_COOLDOWN))


# --- the breaker -------------------------------------------------------------------------
def admit(account: ProviderAccount, *, just_read: bool = False) -> datetime | None:
    """None when a call to the account may go ahead now; else the moment to come back.

    `just_read`: the caller read `account` from the database a moment ago (the push reads it
    with the claim), so the common case — not paused, under the threshold — costs no query.

    After a trip, the first caller past the cool-down becomes the probe: it pushes
    `paused_until` one more cool-down ahead, so everyone else keeps waiting for its outcome.
    """
    now = timezone.now()
    accounts = ProviderAccount.objects.filter(pk=account.pk)
    threshold = breaker_threshold(account)
    if just_read:
        paused_until, failures = account.paused_until, account.consecutive_failures
    else:
        paused_until, failures = accounts.values_list("paused_until", "consecutive_failures").first()
    if paused_until and paused_until > now:
        return paused_until
    if failures < threshold:
        return None  # closed
    probe_window_end = now + breaker_cooldown(account)
    won = (
        accounts.filter(Q(paused_until__isnull=True) | Q(paused_until__lte=now))
        .filter(consecutive_failures__gte=threshold)
        .update(paused_until=probe_window_end)
    )
    if won:
        return None  # this caller is the half-open probe
    # Another caller is the probe (its window holds this one), or the breaker closed since
    # `account` was read. Either way `account` takes what the row says now, so a caller that
    # counts failures from it (a batch's breaker) does not take itself for the probe of a
    # breaker already closed, sending one row and holding the rest a whole cool-down.
    now_read = accounts.values_list("paused_until", "consecutive_failures").first()
    if now_read is None:
        return None
    account.paused_until, account.consecutive_failures = now_read
    return account.paused_until


#: How stale an account's "last worked at" may get while calls keep working: refreshed at most
#: this often, so a busy account's row is not written for every call.
LAST_OK_EVERY = timedelta(seconds=10)


def record_success(account: ProviderAccount, *, just_read: bool = False) -> bool:
    """A call worked: the failure count restarts. True when this closed a tripped breaker.

    `just_read` (see admit): the account was read before the call, under its threshold.
    If the breaker tripped while this call was in flight, the success leaves it alone: a
    call that started before the trip says nothing about the service now. The half-open
    probe after the cool-down decides, as for any trip.
    """
    now = timezone.now()
    accounts = ProviderAccount.objects.filter(pk=account.pk)
    threshold = breaker_threshold(account)
    if not just_read or account.consecutive_failures >= threshold:
        closed = accounts.filter(consecutive_failures__gte=threshold).update(
            consecutive_failures=0, paused_until=None, last_ok_at=now, problem_since=None
        )
        if closed:
            release_waiting(account)
            return True
    # Skip the write when nothing changes (most calls), to spare the row on busy accounts.
    # A success also ends the account's problem incident (tickets/problems.py), if one is open.
    # Read just now and healthy, there is nothing to change and no statement at all: a batch
    # run reads its account with each claim, so a failure another process records in between
    # is reset by the next wave's success instead of this one.
    healthy = {"consecutive_failures": 0, "problem_since": None}
    if just_read and all(getattr(account, name) == value for name, value in healthy.items()):
        if account.last_ok_at and account.last_ok_at > now - LAST_OK_EVERY:
            return False
    accounts.filter(consecutive_failures__lt=threshold).exclude(
        last_ok_at__gt=now - LAST_OK_EVERY, **healthy
    ).update(last_ok_at=now, **healthy)
    return False


def record_failure(account: ProviderAccount, message: str) -> None:
    """A call failed in a way that says the account or service is unhealthy."""
    now = timezone.now()
    until = now + breaker_cooldown(account)
    # A pause already in force is left alone: a straggler that was in flight when the
    # breaker tripped must not push the resume time on (tickets put back to wait were told
    # that time), and a manual pause is never shortened. A failed half-open probe finds the
    # probe window (set by admit) still in force, so the breaker stays open until it ends.
    trips = Q(consecutive_failures__gte=breaker_threshold(account) - 1) & (
        Q(paused_until__isnull=True) | Q(paused_until__lte=now)
    )
    ProviderAccount.objects.filter(pk=account.pk).update(
        consecutive_failures=F("consecutive_failures") + 1,
        last_error=message[:2000],
        last_error_at=now,
        paused_until=Case(When(trips, then=Value(until)), default=F("paused_until")),
    )


def pause(account: ProviderAccount, *, seconds: float | None = None) -> datetime:
    """Hold every call to the account for `seconds`, or until resumed."""
    until = timezone.now() + (timedelta(seconds=seconds) if seconds else INDEFINITELY)
    ProviderAccount.objects.filter(pk=account.pk).update(paused_until=until)
    account.paused_until = until
    return until


def resume(account: ProviderAccount) -> int:
    """Close the breaker and end a pause; returns how many waiting tickets were released."""
    ProviderAccount.objects.filter(pk=account.pk).update(paused_until=None, consecutive_failures=0)
    account.paused_until, account.consecutive_failures = None, 0
    return release_waiting(account)


def release_waiting(account: ProviderAccount) -> int:
    """Tickets and replies put back to wait for the account are due now: publish them.
    Returns how many tickets were released."""
    now = timezone.now()
    waiting = Ticket.objects.filter(
        account_id=account.pk, sync_state=SyncState.PENDING, next_attempt_at__gt=now
    )
    ids = list(waiting.values_list("pk", flat=True))
    if ids:
        Ticket.objects.filter(pk__in=ids, sync_state=SyncState.PENDING).update(
            next_attempt_at=due_after_settle(now)
        )
        transaction.on_commit(lambda: dispatch.push_tickets(ids))
    waiting_replies = Reply.objects.filter(
        ticket__account_id=account.pk, sync_state=SyncState.PENDING, next_attempt_at__gt=now
    )
    reply_ids = list(waiting_replies.values_list("pk", flat=True))
    if reply_ids:
        Reply.objects.filter(pk__in=reply_ids, sync_state=SyncState.PENDING).update(next_attempt_at=None)
        transaction.on_commit(lambda: dispatch.push_replies(reply_ids))
    return len(ids)


def due_after_settle(now=None):
    """`next_attempt_at` for a ticket made due at once (an edit, a retry, a release): now, or
    the end of its settle window when an unanswered update may still land (the one hold a
    release must keep)."""
    now = now or timezone.now()
    return Case(
        When(settle_until__gt=now, then=F("settle_until")), default=Value(None), output_field=DateTimeField()
    )


# --- the rate limit ----------------------------------------------------------------------
def burst_allowance(account: ProviderAccount) -> timedelta:
    """How far ahead of now the theoretical arrival time may run before a request waits:
    (burst - 1) intervals, so `burst` requests pass at once after a quiet spell."""
    rate = float(account.rate_limit or 0)
    burst = max(1, int(account.rate_burst or 1))
    return timedelta(seconds=(burst - 1) / rate) if rate > 0 else timedelta(0)


def rate_wait(account: ProviderAccount, *, now: datetime) -> float:
    """Seconds a request arriving `now` would wait, read from `account` as loaded (no query)."""
    if not account.rate_limit or not account.next_request_at:
        return 0.0
    return max(0.0, (account.next_request_at - burst_allowance(account) - now).total_seconds())


def drain_seconds(account: ProviderAccount, requests: int, *, now: datetime) -> float:
    """When the last of `requests` more requests could start at the account's rate, from the
    bucket as `account` was read: the burst's room goes at once, the rest 1/rate apart."""
    rate = float(account.rate_limit or 0)
    if rate <= 0 or requests <= 0:
        return 0.0
    arrival = max(account.next_request_at or now, now)
    last_start = arrival + timedelta(seconds=(requests - 1) / rate) - burst_allowance(account)
    return max(0.0, (last_start - now).total_seconds())


def reserve_slot(account: ProviderAccount, *, max_wait: float | None = None) -> float:
    """Reserve the account's next request slot; returns the seconds to wait for it.

    GCRA with a burst tolerance: the row keeps a theoretical arrival time (TAT,
    `next_request_at`); a request may start once TAT - allowance has come, and moves TAT on
    by 1/rate from max(TAT, start). Raises AccountBusy (reserving nothing) when the wait
    would exceed `max_wait`, so a worker is not held asleep: the caller puts its work back.
    """
    now, [start] = reserve(account, 1, max_wait=max_wait)
    return (start - now).total_seconds()


def bucket_usable(account: ProviderAccount) -> bool:
    """The stored rate limit and burst are ones the form accepts. A row written around it
    reserves nothing ahead: its calls fail as configuration (Provider.__init__ says why)."""
    return rate_limit_problem(account.rate_limit) is None and rate_burst_problem(account.rate_burst) is None


def reserve_slots(account: ProviderAccount, count: int, *, max_wait: float | None = None) -> list[datetime]:
    """Reserve up to `count` of the account's next request slots at once (a batch's calls);
    returns when each may start, earliest first.

    The same bucket as `reserve_slot`, moved on by one interval per slot reserved, in one
    guarded UPDATE when the burst has room for them all (else a read and a compare-and-swap):
    a batch pays one statement for its calls, not one per call. Slots that would wait longer
    than `max_wait` are not reserved (fewer come back); raises AccountBusy when not even the
    first one would start in time."""
    return reserve(account, count, max_wait=max_wait)[1]


def reserve(
    account: ProviderAccount, count: int, *, max_wait: float | None
) -> tuple[datetime, list[datetime]]:
    """The bucket itself, for `reserve_slot` and `reserve_slots`: the time it read as now, and
    when each reserved slot may start."""
    now = timezone.now()
    rate = float(account.rate_limit or 0)
    if rate <= 0 or count <= 0:
        return now, [now] * max(0, count)  # no limit configured
    interval = timedelta(seconds=1 / rate)
    allowance = burst_allowance(account)
    max_wait = settings.SYNC_RATE_MAX_WAIT if max_wait is None else max_wait
    accounts = ProviderAccount.objects.filter(pk=account.pk)
    headroom = allowance - (count - 1) * interval
    # Fast path, one guarded UPDATE, when the burst has room for them all. The row is re-read
    # by the UPDATE itself, so two workers racing here cannot both take the last places.
    if headroom >= timedelta(0):
        idle = Q(next_request_at__isnull=True) | Q(next_request_at__lt=now)
        if accounts.filter(Q(next_request_at__isnull=True) | Q(next_request_at__lte=now + headroom)).update(
            next_request_at=Case(
                When(idle, then=Value(now + count * interval)),
                default=ExpressionWrapper(
                    F("next_request_at") + count * interval, output_field=DateTimeField()
                ),
            )
        ):
            return now, [now] * count
    while True:
        now = timezone.now()
        current = accounts.values_list("next_request_at", flat=True).first()
        arrival = max(current or now, now)
        starts = []
        for index in range(count):
            start = max(arrival + index * interval - allowance, now)
            if (start - now).total_seconds() > max_wait:
                break
            starts.append(start)
        if not starts:
            raise AccountBusy(max(arrival - allowance, now))
        guard = Q(next_request_at=current) if current else Q(next_request_at__isnull=True)
        if accounts.filter(guard).update(next_request_at=arrival + len(starts) * interval):
            return now, starts
        # Another worker took slots between our read and write: read again.


def govern(provider, *, slot_at: datetime | None = None) -> None:
    """Make every HTTP request `provider` sends wait for the account's rate limit.

    `slot_at`: a slot already reserved for this call (`reserve_slots`, by the batch that
    claimed its row): the call's first request takes it, any further one (a token, an
    upload) reserves its own."""
    http = provider.http
    send = http.send
    account = provider.account
    prepaid = [slot_at] if slot_at is not None else []

    def send_within_rate_limit(request):
        if prepaid:
            wait = (prepaid.pop() - timezone.now()).total_seconds()
        else:
            wait = reserve_slot(account)
        if wait > 0:
            time.sleep(wait)
        return send(request)

    http.send = send_within_rate_limit
