"""Per-account limits shared by all workers: the rate limit and the circuit breaker."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from providers.errors import ProviderAuthError, ProviderTransientError, ProviderValidationError
from tests.helpers import refreshed, wait_for
from tickets import batch, limits, outbound, services, sync
from tickets.models import SyncAttempt, SyncState, Ticket


def create(account, **fields) -> Ticket:
    return services.create_ticket(account=account, title=fields.pop("title", "Printer on fire"), **fields)


# --- the rate limit ------------------------------------------------------------------------
@pytest.mark.django_db
def test_requests_are_given_slots_one_interval_apart_and_a_far_slot_is_refused(account_factory):
    account = account_factory("kapture", rate_limit=1)
    started = time.monotonic()
    waits = [limits.reserve_slot(account, max_wait=10) for _ in range(5)]
    elapsed = time.monotonic() - started
    assert waits[0] == 0
    # The n-th request's slot is n intervals (1 s) after the first one's, whoever asked for it:
    # its wait is that, less the time the requests themselves took, however busy the machine.
    for n, wait in enumerate(waits[1:], start=1):
        assert n - elapsed <= wait <= n
    reserved = refreshed(account).next_request_at
    with pytest.raises(limits.AccountBusy) as busy:
        limits.reserve_slot(account, max_wait=0.5)
    assert busy.value.until == reserved
    assert refreshed(account).next_request_at == reserved  # a refused request reserves nothing


@pytest.mark.django_db
def test_an_account_without_a_rate_limit_is_never_held(account_factory):
    account = account_factory("kapture", rate_limit=0)
    assert [limits.reserve_slot(account) for _ in range(20)] == [0.0] * 20


# --- the breaker ---------------------------------------------------------------------------
@pytest.mark.django_db
def test_consecutive_unhealthy_failures_pause_the_account_and_one_probe_is_let_through(account_factory):
    account = account_factory("kapture", settings={"breaker_threshold": 3, "breaker_cooldown": 60})
    for _ in range(2):
        limits.record_failure(account, "HTTP 503")
    assert limits.admit(account) is None  # two failures: still closed
    limits.record_failure(account, "HTTP 503")
    paused_until = refreshed(account).paused_until
    assert paused_until > timezone.now() + timedelta(seconds=55)
    assert limits.admit(account) == paused_until

    # The cool-down is over: the first caller is the probe, everyone else keeps waiting.
    type(account).objects.filter(pk=account.pk).update(paused_until=timezone.now() - timedelta(seconds=1))
    assert limits.admit(account) is None
    assert limits.admit(account) > timezone.now() + timedelta(seconds=55)

    limits.record_failure(account, "HTTP 503")  # the probe failed: open again
    account = refreshed(account)
    assert account.consecutive_failures == 4
    assert account.paused_until > timezone.now() + timedelta(seconds=55)
    type(account).objects.filter(pk=account.pk).update(paused_until=timezone.now() - timedelta(seconds=1))
    assert limits.admit(account) is None
    assert limits.record_success(account) is True  # the next probe worked: closed
    account = refreshed(account)
    assert (account.consecutive_failures, account.paused_until) == (0, None)
    assert limits.admit(account) is None


@pytest.mark.django_db
def test_only_failures_that_say_the_service_is_unhealthy_count(account_factory):
    account = account_factory("kapture")
    ticket = create(account)

    def counts(exc) -> bool:
        return outbound.decide(
            sync.TICKETS, exc, row=ticket, operation="update", sent=True
        ).counts_against_account

    assert counts(ProviderAuthError("Invalid Auth Key"))
    assert counts(ProviderTransientError("HTTP 503"))
    assert not counts(ProviderValidationError("title is missing", field_errors={"title": ["missing"]}))


@pytest.mark.django_db(transaction=True)  # the batch's threads read on connections of their own
def test_a_paused_accounts_ticket_waits_without_an_attempt_or_a_call(account_factory, sandbox, nudges):
    account = account_factory("kapture")
    ticket = create(account)
    until = services.pause_account(account=account)
    assert batch.push_account(sync.TICKETS, account.pk) == {"put back": 1}
    ticket = refreshed(ticket)
    assert (ticket.sync_state, ticket.attempts, ticket.next_attempt_at) == ("pending", 0, until)
    assert not SyncAttempt.objects.filter(ticket=ticket).exists()
    assert sandbox.state("kapture")["tickets"] == []
    assert batch.claim_batch(sync.TICKETS, account.pk, limit=8) == []  # not due before the pause ends


@pytest.mark.django_db
def test_a_failure_arriving_after_the_trip_does_not_move_the_resume_time(account_factory):
    # A call already in flight when the breaker tripped fails late: the tickets put back to
    # wait were told when the pause ends, and that moment stays true.
    account = account_factory("kapture", settings={"breaker_threshold": 1, "breaker_cooldown": 60})
    limits.record_failure(account, "HTTP 503")
    tripped_until = refreshed(account).paused_until
    limits.record_failure(account, "HTTP 503")
    account = refreshed(account)
    assert (account.paused_until, account.consecutive_failures) == (tripped_until, 2)


@pytest.mark.django_db
def test_a_success_of_a_call_sent_before_the_trip_leaves_the_breaker_open(account_factory):
    account = account_factory("kapture", settings={"breaker_threshold": 2, "breaker_cooldown": 60})
    read_with_the_claim = type(account).objects.get(pk=account.pk)  # closed when the call went out
    limits.record_failure(account, "HTTP 503")
    limits.record_failure(account, "HTTP 503")  # tripped while that call was in flight
    tripped = refreshed(account)
    assert limits.record_success(read_with_the_claim, just_read=True) is False
    account = refreshed(account)
    assert (account.consecutive_failures, account.paused_until) == (2, tripped.paused_until)


@pytest.mark.django_db
def test_a_manual_pause_is_not_shortened_by_a_trip(account_factory):
    account = account_factory("kapture", settings={"breaker_threshold": 1, "breaker_cooldown": 5})
    until = services.pause_account(account=account)
    limits.record_failure(account, "HTTP 503")
    assert refreshed(account).paused_until == until


# --- with a real worker --------------------------------------------------------------------
@pytest.mark.worker
def test_a_failing_service_trips_the_breaker_and_tickets_wait_until_resumed(worker, sandbox, account_factory):
    account = account_factory("kapture", settings={"breaker_threshold": 2, "breaker_cooldown": 120})
    sandbox.faults(rate=1.0, kinds=["503"])
    first, second = create(account, title="one"), create(account, title="two")
    wait_for(lambda: refreshed(account).paused_until, message="the breaker did not trip")

    late = create(account, title="created while paused")
    wait_for(lambda: refreshed(late).next_attempt_at, message="the paused ticket was not put back")
    account = refreshed(account)
    assert late.sync_state == "pending" and late.attempts == 0
    assert late.next_attempt_at == account.paused_until
    assert not SyncAttempt.objects.filter(ticket=late).exists()  # no HTTP while paused
    for ticket in (refreshed(first), refreshed(second)):
        assert ticket.sync_state == SyncState.PENDING  # waiting, never failed
    calls = SyncAttempt.objects.filter(account=account).count()
    assert calls == account.consecutive_failures >= 2

    sandbox.faults()  # the service recovers; a person resumes the account
    services.resume_account(account=account)
    for ticket in (first, second, late):
        wait_for(lambda t=ticket: refreshed(t).sync_state == SyncState.SYNCED, message=f"{ticket} not synced")
    assert len(sandbox.state("kapture")["tickets"]) == 3
    assert refreshed(account).consecutive_failures == 0


@pytest.mark.worker
def test_after_the_cool_down_one_probe_closes_the_breaker(worker, sandbox, account_factory):
    account = account_factory("kapture", settings={"breaker_threshold": 1, "breaker_cooldown": 1.5})
    sandbox.faults(script=["503"])
    first = create(account, title="one")
    wait_for(lambda: refreshed(account).paused_until, message="the breaker did not trip")
    second = create(account, title="two")
    for ticket in (first, second):
        wait_for(
            lambda t=ticket: refreshed(t).sync_state == SyncState.SYNCED,
            timeout=30,
            message=f"{ticket} not synced after the cool-down",
        )
    account = refreshed(account)
    assert (account.consecutive_failures, account.paused_until) == (0, None)
    outcomes = sorted(SyncAttempt.objects.filter(account=account).values_list("outcome", flat=True))
    assert outcomes == ["retry", "success", "success"]


@pytest.mark.worker
def test_the_rate_limit_holds_across_worker_processes(worker, sandbox, account_factory):
    account = account_factory("kapture", rate_limit=5)
    tickets = [create(account, title=f"ticket {n}") for n in range(6)]
    for ticket in tickets:
        wait_for(lambda t=ticket: refreshed(t).sync_state == SyncState.SYNCED, message=f"{ticket} not synced")
    starts = sorted(SyncAttempt.objects.filter(account=account).values_list("started_at", flat=True))
    assert len(starts) == 6
    # Six requests at 5/s: the provider saw them spread over at least a second, although two
    # worker processes were sending at once.
    assert (starts[-1] - starts[0]).total_seconds() >= 5 * 0.2 * 0.9
