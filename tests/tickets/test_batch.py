"""The batched push (tickets/batch.py): an account's due rows claimed in one statement, sent
concurrently, fenced per row; leases renewed while calls are in flight.

Against the sandbox over HTTP. Tests that call the batch in-process commit their data
(transactional_db): the batch's threads read and write on connections of their own."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django import db
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from providers.base import RemoteRef
from providers.models import ProviderAccount
from tests.faults_harness import WorkerFleet, remote_id_of, remote_tickets
from tests.helpers import wait_for
from tickets import batch, dispatch, limits, outbound, services, sync
from tickets.models import SyncAttempt, SyncState, Ticket

pytestmark = pytest.mark.django_db(transaction=True)


def new_tickets(account, count: int, title: str = "Printer on fire") -> list[int]:
    return [
        services.create_ticket(account=account, title=f"{title} {n}", requester_email="tim@acme.com").pk
        for n in range(count)
    ]


def push_in_another_thread(account_id: int) -> threading.Thread:
    """Another worker's run of the account, started: on a connection of its own, closed after
    (a connection left open keeps PostgreSQL from dropping the test database at the end)."""

    def push_and_disconnect():
        try:
            batch.push_account(sync.TICKETS, account_id)
        finally:
            connections.close_all()

    pushing = threading.Thread(target=push_and_disconnect)
    pushing.start()
    return pushing


def test_one_nudge_sends_all_the_accounts_due_tickets_once_each(sandbox, account_factory, nudges):
    account = account_factory("kapture", rate_limit=1000, rate_burst=1000)
    ids = new_tickets(account, 12)

    states = batch.push_account(sync.TICKETS, account.pk)

    assert states == {SyncState.SYNCED: 12}
    assert set(Ticket.objects.filter(pk__in=ids).values_list("sync_state", flat=True)) == {SyncState.SYNCED}
    remote_ids = list(Ticket.objects.filter(pk__in=ids).values_list("remote_id", flat=True))
    assert len(set(remote_ids)) == 12 and all(remote_ids)
    assert SyncAttempt.objects.filter(ticket_id__in=ids, operation="create").count() == 12
    # A second nudge (a re-delivered message) finds nothing to send.
    assert batch.push_account(sync.TICKETS, account.pk) == {}


def test_a_claim_takes_each_due_row_once_and_fences_it_by_its_attempt(sandbox, account_factory, nudges):
    account = account_factory("kapture", rate_limit=1000, rate_burst=1000)
    other = account_factory("kapture", name="Other Kapture", rate_limit=1000, rate_burst=1000)
    ids = new_tickets(account, 5)
    new_tickets(other, 2)

    first = batch.claim_batch(sync.TICKETS, account.pk, limit=3)
    second = batch.claim_batch(sync.TICKETS, account.pk, limit=10)
    again = batch.claim_batch(sync.TICKETS, account.pk, limit=10)

    assert [row.pk for row in first] == ids[:3]
    assert [row.pk for row in second] == ids[3:]  # the rest, never a row the first claim took
    assert again == []
    assert all(row.attempts == 1 for row in first + second)
    assert Ticket.objects.filter(account=other, sync_state=SyncState.PENDING).count() == 2


def test_a_slow_live_call_renews_its_lease_and_is_never_taken_over(
    sandbox, account_factory, settings, nudges
):
    settings.SYNC_LEASE = 2  # renewed every ~0.7 s; the call takes 4 s
    account = account_factory("kapture", rate_limit=1000, rate_burst=1000, timeout=8)
    [ticket_id] = new_tickets(account, 1)
    sandbox.faults(rate=1.0, kinds=["slow"], slow_seconds=4, vendors=["kapture"])
    pushing = push_in_another_thread(account.pk)
    try:
        wait_for(
            lambda: Ticket.objects.filter(pk=ticket_id, sync_state=SyncState.SENDING).exists(),
            timeout=5,
            interval=0.05,
        )
        time.sleep(3)  # past the lease: only its renewal keeps the row
        assert sync.sweep()["recovered"] == 0
    finally:
        pushing.join(30)
    ticket = Ticket.objects.get(pk=ticket_id)
    assert ticket.sync_state == SyncState.SYNCED and ticket.remote_id
    assert len(sandbox.state("kapture")["tickets"]) == 1


def test_rows_of_a_dead_worker_are_recovered_once_their_lease_runs_out(
    sandbox, account_factory, settings, nudges
):
    settings.SYNC_LEASE = 1
    account = account_factory("kapture", rate_limit=1000, rate_burst=1000)
    update_id, create_id = new_tickets(account, 2)
    Ticket.objects.filter(pk=update_id).update(remote_id="999")
    batch.claim_batch(sync.TICKETS, account.pk, limit=10)  # ... and the worker dies here

    assert sync.sweep()["recovered"] == 0  # the lease still runs
    time.sleep(1.2)
    assert sync.sweep()["recovered"] == 2
    assert Ticket.objects.get(pk=update_id).sync_state == SyncState.PENDING  # an update is sent again
    assert Ticket.objects.get(pk=create_id).sync_state == SyncState.NEEDS_ATTENTION  # a create may exist


@pytest.fixture
def fleet(transactional_db, broker_url, sandbox, tmp_path):
    workers = WorkerFleet(broker_url, tmp_path, concurrency=2)  # the README's worker: prefork, 2
    yield workers
    workers.stop_all()


@pytest.mark.worker
def test_a_fast_accounts_tickets_keep_flowing_while_another_account_answers_in_5_s(
    fleet, sandbox, account_factory
):
    slow = account_factory("knight", rate_limit=1000, rate_burst=1000, timeout=8)
    fast = account_factory("kapture", rate_limit=1000, rate_burst=1000)
    sandbox.faults(rate=1.0, kinds=["slow"], slow_seconds=5, vendors=["knight"])
    slow_ids = new_tickets(slow, 10, "Slow")  # queued first, as in the issue
    fast_ids = new_tickets(fast, 20, "Fast")
    fleet.start(1)

    wait_for(
        lambda: Ticket.objects.filter(pk__in=fast_ids, sync_state=SyncState.SYNCED).count() == 20,
        timeout=60,
        message="the fast account's tickets were not all synced",
    )
    # Each slow call takes 5 s and the slow account has ten: the fast account did not wait for them.
    assert Ticket.objects.filter(pk__in=slow_ids, sync_state=SyncState.SYNCED).count() < 10
    wait_for(
        lambda: Ticket.objects.filter(pk__in=slow_ids, sync_state=SyncState.SYNCED).count() == 10,
        timeout=60,
        message="the slow account's tickets were not all synced",
    )
    fleet.assert_alive()
    assert len(sandbox.state("kapture")["tickets"]) == 20


# --- the group finish: one fenced UPDATE per outcome state ---------------------------------
def test_a_group_finish_writes_only_rows_still_held_and_requeues_a_row_edited_meanwhile(
    account_factory, nudges, monkeypatch
):
    account = account_factory("kapture")
    kept, taken, edited, refused = new_tickets(account, 4)
    claimed = {row.pk: row for row in batch.claim_batch(sync.TICKETS, account.pk, limit=4)}
    # While the calls were in flight: the sweeper gave one row away and another worker claimed
    # it again; a person edited another.
    Ticket.objects.filter(pk=taken).update(sync_state=SyncState.PENDING)
    [overtaking] = batch.claim_batch(sync.TICKETS, account.pk, limit=4)  # the only row pending
    assert overtaking.pk == taken and overtaking.attempts == claimed[taken].attempts + 1
    services.update_ticket(ticket=Ticket.objects.get(pk=edited), changes={"title": "Printer on fire, now"})
    republished: list[tuple[list[int], float]] = []
    monkeypatch.setattr(
        sync.TICKETS, "publish", lambda ids, countdown=0: republished.append((ids, countdown))
    )

    def created(pk: int) -> outbound.Outcome:
        success = outbound.Decision(SyncState.SYNCED, SyncAttempt.Outcome.SUCCESS)
        return outbound.Outcome(claimed[pk], "create", success, sent=sync.Sent(RemoteRef(f"R{pk}"), ""))

    refusal = outbound.Decision(SyncState.FAILED, SyncAttempt.Outcome.FAILED, "Title is too long")
    outcomes = [
        created(kept),
        created(taken),
        created(edited),
        outbound.Outcome(claimed[refused], "create", refusal),
    ]
    with CaptureQueriesContext(connection) as queries:
        recorded = outbound.finish_group(sync.TICKETS, outcomes)

    statements = [query["sql"].split()[0] for query in queries.captured_queries]
    # Successes at the revision sent, successes edited meanwhile, failures; the audit in one INSERT.
    assert statements.count("UPDATE") == 3 and statements.count("INSERT") == 1
    assert recorded.applied == {kept, edited, refused}
    tickets = Ticket.objects.in_bulk([kept, taken, edited, refused])
    assert tickets[kept].sync_state == SyncState.SYNCED and tickets[kept].remote_id == f"R{kept}"
    assert tickets[kept].synced_revision == tickets[kept].revision
    # The row another worker holds now is not touched: its own outcome will be written.
    assert tickets[taken].sync_state == SyncState.SENDING
    assert tickets[taken].attempts == claimed[taken].attempts + 1 and tickets[taken].remote_id == ""
    # The edited row keeps what the create made (so an update is sent next, not a second
    # create), but is not synced at a revision that was never sent.
    assert tickets[edited].sync_state == SyncState.PENDING and tickets[edited].remote_id == f"R{edited}"
    assert tickets[edited].synced_revision == claimed[edited].revision < tickets[edited].revision
    assert tickets[edited].attempts == 0
    assert (
        tickets[refused].sync_state == SyncState.FAILED and tickets[refused].last_error == "Title is too long"
    )
    # The newer revision is sent next: the run publishes it once it ends (nothing yet).
    assert set(recorded.due_again) == {edited} and republished == []
    # Every call is audited, the one overtaken too.
    assert SyncAttempt.objects.filter(ticket_id__in=[kept, taken, edited, refused]).count() == 4


def test_a_group_finish_writes_each_row_its_own_values(account_factory, nudges):
    """Columns that differ per row (a remote id, a baseline of a JSON column, a retry time beside
    none) each reach their own row, on PostgreSQL (which must be told each CASE's type) too."""
    account = account_factory("kapture")
    open_one, resolved, retried, retried_later = new_tickets(account, 4)
    Ticket.objects.filter(pk=resolved).update(status="resolved")
    claimed = {row.pk: row for row in batch.claim_batch(sync.TICKETS, account.pk, limit=4)}
    success = outbound.Decision(SyncState.SYNCED, SyncAttempt.Outcome.SUCCESS)

    def created(pk: int, remote_status: str) -> outbound.Outcome:
        return outbound.Outcome(
            claimed[pk],
            "create",
            success,
            sent=sync.Sent(RemoteRef(f"R{pk}", remote_status=remote_status), ""),
        )

    def retry(pk: int, seconds: float) -> outbound.Outcome:
        decision = outbound.Decision(
            SyncState.PENDING, SyncAttempt.Outcome.RETRY, f"Busy ({seconds} s)", seconds
        )
        return outbound.Outcome(claimed[pk], "create", decision)

    before = timezone.now()
    recorded = outbound.finish_group(
        sync.TICKETS,
        [
            created(open_one, "Open"),
            created(resolved, "Closed"),
            retry(retried, 30),
            retry(retried_later, 600),
        ],
    )

    assert recorded.applied == {open_one, resolved, retried, retried_later}
    tickets = Ticket.objects.in_bulk([open_one, resolved, retried, retried_later])
    assert [tickets[pk].remote_id for pk in (open_one, resolved)] == [f"R{open_one}", f"R{resolved}"]
    assert tickets[open_one].synced_fields == {"status": "new", "remote_status": "Open"}
    assert tickets[resolved].synced_fields == {"status": "resolved", "remote_status": "Closed"}
    assert tickets[open_one].sync_state == tickets[resolved].sync_state == SyncState.SYNCED
    assert tickets[open_one].next_attempt_at is None
    for pk, seconds in ((retried, 30), (retried_later, 600)):
        assert tickets[pk].sync_state == SyncState.PENDING and tickets[pk].remote_id == ""
        assert tickets[pk].last_error == f"Busy ({seconds} s)"
        assert before + timedelta(seconds=seconds) <= tickets[pk].next_attempt_at
        assert tickets[pk].next_attempt_at <= timezone.now() + timedelta(seconds=seconds)


def test_tickets_saved_one_after_another_ride_the_live_run_a_few_per_claim(
    sandbox, account_factory, nudges, monkeypatch
):
    """A stream of creates (one every 20 ms, as a busy desk saves them) while the account's run
    sends: that run takes them all, several per claim (it records a wave no sooner than
    TRICKLE_PACE_SECONDS after its claim), and almost none publishes a nudge of its own."""
    account = account_factory("kapture", rate_limit=1000, rate_burst=1000)
    claims: list[int] = []
    claim_batch = batch.claim_batch

    def counted(*args, **kwargs):
        rows = claim_batch(*args, **kwargs)
        claims.append(len(rows))
        return rows

    monkeypatch.setattr(batch, "claim_batch", counted)
    ids = new_tickets(account, 1, "First")
    nudges.clear()
    pushing = push_in_another_thread(account.pk)
    for n in range(12):
        time.sleep(0.02)
        ids += new_tickets(account, 1, f"Next {n}")
    pushing.join(30)

    assert Ticket.objects.filter(pk__in=ids, sync_state=SyncState.SYNCED).count() == 13, claims
    assert len(sandbox.state("kapture")["tickets"]) == 13  # each created once
    # A save that commits in the moment between one wave's finish and the next claim sees no
    # row `sending` and publishes a nudge (which would find the run live and return): a few.
    assert len(nudges) <= 3, nudges
    assert len([count for count in claims if count]) <= 7, claims


def test_rows_edited_or_taken_over_during_a_batch_run_end_as_one_by_one_they_would(
    sandbox, account_factory, nudges
):
    account = account_factory("kapture", rate_limit=1000, rate_burst=1000, timeout=8)
    ids = new_tickets(account, 6)
    edited, taken = ids[1], ids[4]
    sandbox.faults(rate=1.0, kinds=["slow"], slow_seconds=2, vendors=["kapture"])
    pushing = push_in_another_thread(account.pk)
    try:
        wait_for(
            lambda: Ticket.objects.filter(pk__in=ids, sync_state=SyncState.SENDING).count() == 6,
            timeout=5,
            interval=0.05,
        )
        services.update_ticket(ticket=Ticket.objects.get(pk=edited), changes={"status": "resolved"})
        Ticket.objects.filter(pk=taken).update(sync_state=SyncState.PENDING)
        # Another worker's claim (the only row pending), whose outcome is still to come.
        [overtaking] = batch.claim_batch(sync.TICKETS, account.pk, limit=6)
    finally:
        pushing.join(30)
    assert not pushing.is_alive()
    tickets = Ticket.objects.in_bulk(ids)
    assert tickets[taken].sync_state == SyncState.SENDING and tickets[taken].attempts == overtaking.attempts
    assert tickets[taken].remote_id == ""
    in_step = [pk for pk in ids if pk != taken]
    assert all(tickets[pk].sync_state == SyncState.SYNCED for pk in in_step)
    assert all(tickets[pk].synced_revision == tickets[pk].revision for pk in in_step)
    # The edit was sent as an update of the ticket the create made, after it.
    remote = {remote_id_of("kapture", held): held for held in remote_tickets(sandbox, "kapture")}
    assert remote[tickets[edited].remote_id]["substatus"] == "RS"  # resolved
    assert SyncAttempt.objects.filter(ticket_id=edited, operation="update").exists()


def test_a_run_that_finds_the_breaker_closed_since_its_claim_sends_every_row(
    sandbox, account_factory, nudges, monkeypatch
):
    account = account_factory("kapture", settings={"breaker_threshold": 2, "breaker_cooldown": 60})
    ids = new_tickets(account, 3)
    row = ProviderAccount.objects.filter(pk=account.pk)
    row.update(consecutive_failures=2, paused_until=timezone.now() - timedelta(seconds=1))  # cool-down over
    claim = batch.claim_batch

    def claim_then_another_worker_closes_the_breaker(*args, **kwargs):
        rows = claim(*args, **kwargs)  # the account read with it, tripped
        row.update(consecutive_failures=0, paused_until=None)  # another worker's probe worked
        return rows

    monkeypatch.setattr(batch, "claim_batch", claim_then_another_worker_closes_the_breaker)
    states = batch.push_account(sync.TICKETS, account.pk)
    # Not a probe of one row with the others held for the 60 s cool-down: the breaker is closed.
    assert "put back" not in states
    assert Ticket.objects.filter(pk__in=ids, sync_state=SyncState.SYNCED).count() == 3


def test_after_a_quick_call_the_run_waits_for_its_whole_wave_after_a_slow_one_for_half(monkeypatch):
    """Quick calls (a provider answering at once) end together: their outcomes are taken as one
    wave, so the finish runs while no call competes with it. Slow calls (a provider across the
    internet) are taken as half the wave ends, so the next claim refills their threads."""
    monkeypatch.setattr(batch, "GATHER_SECONDS", 2.0)  # room for the late half, however busy the machine
    senders = batch.Senders(sync.TICKETS, width=4, breaker=None)

    def wave(call_seconds: float) -> list[batch.Sending]:
        began = time.monotonic() - call_seconds
        items = [batch.Sending(row=None, operation="create", started_at=began) for _ in range(4)]
        for item in items[:2]:
            senders.finished.put(item)
        late = threading.Timer(0.2, lambda: [senders.finished.put(item) for item in items[2:]])
        late.start()
        return items

    quick = wave(0.0)
    assert senders.take_finished(timeout=1, want=2, wave=4) == quick
    slow = wave(0.5)
    assert senders.take_finished(timeout=1, want=2, wave=4) == slow[:2]
    assert senders.take_finished(timeout=1, want=2, wave=2) == slow[2:]


def test_a_runs_retries_are_published_together_each_no_earlier_than_it_is_due(
    sandbox, account_factory, nudges, monkeypatch
):
    account = account_factory("kapture", rate_limit=1000, rate_burst=1000)
    ids = new_tickets(account, 4)
    published: list[tuple[list[int], float, object]] = []
    monkeypatch.setattr(
        dispatch,
        "nudge_accounts",
        lambda ids, countdown=0: published.append((list(ids), countdown, timezone.now())) or [],
    )
    sandbox.faults(rate=1.0, kinds=["503"], vendors=["kapture"])

    states = batch.push_account(sync.TICKETS, account.pk)

    assert states == {SyncState.PENDING: 4}
    # Backoff with jitter gives each ticket its own wait (1-2 s): one nudge per second of
    # countdown, not one per ticket, and each ticket is due when a nudge runs.
    assert 1 <= len(published) <= 2
    assert all(nudged == [account.pk] for nudged, _, _ in published)
    for ticket in Ticket.objects.filter(pk__in=ids):
        assert ticket.next_attempt_at > timezone.now() - timedelta(seconds=1)  # it does wait
        assert any(
            at + timedelta(seconds=countdown) >= ticket.next_attempt_at for _, countdown, at in published
        )


def test_a_database_error_under_a_call_is_retried_later_not_failed(
    sandbox, account_factory, nudges, monkeypatch
):
    # The sender thread's own database work (here the rate-limit slot) fails as PostgreSQL
    # does with too many clients: the call is not made, and the ticket waits to be tried again.
    account = account_factory("kapture")
    [ticket] = new_tickets(account, 1)
    govern = limits.govern

    def refused(provider, **kwargs):
        raise db.OperationalError("connection failed: FATAL:  sorry, too many clients already")

    monkeypatch.setattr(limits, "govern", refused)
    assert batch.push_account(sync.TICKETS, account.pk) == {SyncState.PENDING: 1}
    waiting = Ticket.objects.get(pk=ticket)
    assert waiting.next_attempt_at is not None and waiting.next_attempt_at > timezone.now()
    assert (
        waiting.last_error
        == "The console's database failed during the call (OperationalError); it will be tried again."
    )
    assert "too many clients" not in waiting.last_error
    [attempt] = SyncAttempt.objects.filter(ticket_id=ticket)
    assert attempt.outcome == SyncAttempt.Outcome.RETRY
    assert remote_tickets(sandbox, "kapture") == []

    monkeypatch.setattr(limits, "govern", govern)  # the database is back; the retry comes due
    Ticket.objects.filter(pk=ticket).update(next_attempt_at=timezone.now())
    assert batch.push_account(sync.TICKETS, account.pk) == {SyncState.SYNCED: 1}
    assert len(remote_tickets(sandbox, "kapture")) == 1
