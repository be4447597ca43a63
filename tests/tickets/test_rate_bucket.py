"""The account's rate limit as a token bucket (rate + burst) shared by every worker: a burst
goes at once, what follows is spaced by 1/rate, and separate connections share one bucket."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import connections
from django.utils import timezone

from providers.models import ProviderAccount
from tests.helpers import refreshed
from tickets import limits


class StoppedClock:
    """The bucket's clock, moved only by the test: the waits it answers are exact however long
    a busy machine takes between two calls (the real clock once made 1.0 s read 0.94 s)."""

    def __init__(self) -> None:
        self.at = timezone.now()

    def now(self):
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch) -> StoppedClock:
    stopped = StoppedClock()
    monkeypatch.setattr(limits, "timezone", SimpleNamespace(now=stopped.now))
    return stopped


@pytest.mark.django_db
def test_a_burst_goes_at_once_and_the_next_request_waits_one_interval(account_factory, clock):
    account = account_factory("kapture", rate_limit=2, rate_burst=3)
    assert [limits.reserve_slot(account, max_wait=5) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limits.reserve_slot(account, max_wait=5) == pytest.approx(0.5)
    assert limits.reserve_slot(account, max_wait=5) == pytest.approx(1.0)


@pytest.mark.django_db
def test_a_quiet_spell_refills_the_bucket_up_to_the_burst_only(account_factory, clock):
    account = account_factory("kapture", rate_limit=20, rate_burst=4)
    assert [limits.reserve_slot(account, max_wait=5) for _ in range(4)] == [0.0] * 4
    clock.advance(0.3)  # six intervals: the bucket is full again, but it holds four
    waits = [limits.reserve_slot(account, max_wait=5) for _ in range(5)]
    assert waits[:4] == [0.0] * 4
    assert waits[4] == pytest.approx(0.05)


@pytest.mark.django_db
def test_a_slot_beyond_the_longest_wait_is_refused_and_reserves_nothing(account_factory, clock):
    account = account_factory("kapture", rate_limit=1, rate_burst=2)
    limits.reserve_slot(account, max_wait=5)
    limits.reserve_slot(account, max_wait=5)
    reserved = refreshed(account).next_request_at
    with pytest.raises(limits.AccountBusy) as busy:
        limits.reserve_slot(account, max_wait=0.5)
    # The refused request could have started once the burst's allowance (one interval) passed.
    assert busy.value.until == pytest.approx(reserved - timedelta(seconds=1), abs=timedelta(milliseconds=1))
    assert refreshed(account).next_request_at == reserved


@pytest.mark.django_db
def test_an_account_stored_before_bursts_keeps_spacing_every_request(account_factory, clock):
    account = account_factory("kapture", rate_limit=4)  # the model's burst: 1
    waits = [limits.reserve_slot(account, max_wait=5) for _ in range(3)]
    assert waits[0] == 0.0
    assert waits[1:] == [pytest.approx(0.25), pytest.approx(0.5)]


@pytest.mark.django_db(transaction=True)
def test_threads_on_their_own_connections_share_one_bucket(account_factory):
    """Each thread has its own database connection, like workers on other machines. Checked
    without trusting the threads' timing (the machine may be busy): no reservation is lost, and
    no more go at once than the burst plus what the rate refilled while they ran."""
    rate, burst, per_thread, threads = 20.0, 5, 10, 3
    account = account_factory("kapture", rate_limit=rate, rate_burst=burst)
    waits: list[float] = []
    lock = threading.Lock()
    ready = threading.Barrier(threads)

    def reserve_many():
        try:
            mine = ProviderAccount.objects.get(pk=account.pk)
            ready.wait()
            for _ in range(per_thread):
                wait = limits.reserve_slot(mine, max_wait=10)
                with lock:
                    waits.append(wait)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=reserve_many) for _ in range(threads)]
    began, began_at = time.monotonic(), timezone.now()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    took = time.monotonic() - began
    total = threads * per_thread
    assert len(waits) == total
    # Every reservation moved the one bucket on by 1/rate: none was lost to a race.
    assert refreshed(account).next_request_at >= began_at + timedelta(seconds=total / rate)
    at_once = sum(1 for wait in waits if wait == 0)
    assert burst <= at_once <= burst + int(took * rate) + 1, (at_once, took)
    # The rest were told to wait their turn, up to (total - burst) intervals.
    assert max(waits) == pytest.approx((total - burst) / rate, abs=took + 0.05)


@pytest.mark.django_db
def test_the_drain_estimate_counts_the_bursts_room_then_the_rate(account_factory):
    now = timezone.now()
    account = account_factory("kapture", rate_limit=2, rate_burst=5)
    assert limits.drain_seconds(account, 5, now=now) == 0.0  # an idle bucket takes five at once
    assert limits.drain_seconds(account, 9, now=now) == pytest.approx(2.0)  # four more, 0.5 s apart
    account.next_request_at = now + timedelta(seconds=10)  # the bucket ran ahead by ten seconds
    assert limits.rate_wait(account, now=now) == pytest.approx(8.0)  # less the burst's two seconds
    assert limits.drain_seconds(account, 1, now=now) == pytest.approx(8.0)


def seconds_after(clock: StoppedClock, starts) -> list[float]:
    return [round((start - clock.at).total_seconds(), 6) for start in starts]


@pytest.mark.django_db
def test_a_batch_reserves_its_calls_slots_together_as_one_by_one(account_factory, clock):
    """A batch's reservation moves the same bucket as single requests: its burst goes at once,
    the rest 1/rate apart, and whoever comes next queues behind all of them."""
    account = account_factory("kapture", rate_limit=2, rate_burst=3)
    assert seconds_after(clock, limits.reserve_slots(account, 3, max_wait=5)) == [0.0, 0.0, 0.0]
    assert limits.reserve_slot(account, max_wait=5) == pytest.approx(0.5)
    assert seconds_after(clock, limits.reserve_slots(account, 2, max_wait=5)) == [1.0, 1.5]
    clock.advance(10)  # a quiet spell: the burst is back
    assert seconds_after(clock, limits.reserve_slots(account, 5, max_wait=5)) == [0.0, 0.0, 0.0, 0.5, 1.0]
    assert limits.reserve_slot(account, max_wait=5) == pytest.approx(1.5)


@pytest.mark.django_db
def test_a_batch_reserves_only_the_slots_within_the_longest_wait(account_factory, clock):
    account = account_factory("kapture", rate_limit=1, rate_burst=2)
    assert seconds_after(clock, limits.reserve_slots(account, 6, max_wait=2)) == [0.0, 0.0, 1.0, 2.0]
    reserved = refreshed(account).next_request_at
    assert reserved == clock.at + timedelta(seconds=4)  # four slots taken, not six
    with pytest.raises(limits.AccountBusy) as busy:
        limits.reserve_slots(account, 3, max_wait=1.5)
    assert busy.value.until == clock.at + timedelta(seconds=3)  # the fifth slot
    assert refreshed(account).next_request_at == reserved  # a refusal reserves nothing


@pytest.mark.django_db
def test_an_account_without_a_rate_limit_reserves_nothing(account_factory, clock):
    account = account_factory("kapture", rate_limit=0)
    assert seconds_after(clock, limits.reserve_slots(account, 3)) == [0.0, 0.0, 0.0]
    assert refreshed(account).next_request_at is None
