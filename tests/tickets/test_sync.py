"""The sync path end to end: a real Celery worker process, the sandbox over real HTTP."""

import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.helpers import wait_for
from tickets import services, sync
from tickets.models import SyncAttempt, SyncState, Ticket

pytestmark = pytest.mark.worker


def settled(ticket: Ticket, *states: str, timeout: float = 30) -> Ticket:
    states = states or (SyncState.SYNCED, SyncState.FAILED, SyncState.NEEDS_ATTENTION)

    def check():
        ticket.refresh_from_db()
        return ticket.sync_state in states

    wait_for(check, timeout=timeout, message=f"{ticket.reference} stayed {ticket.sync_state}")
    return ticket


def create(account, **fields) -> Ticket:
    defaults = {"title": "Printer on fire", "description": "Third floor", "requester_email": "tim@acme.com"}
    return services.create_ticket(account=account, **{**defaults, **fields})


def test_a_saved_ticket_is_pushed_by_the_worker_and_recorded_without_the_token(
    worker, sandbox, account_factory
):
    account = account_factory("kapture")
    ticket = create(account)
    assert ticket.sync_state == SyncState.PENDING and ticket.reference.startswith("TC-")

    settled(ticket, SyncState.SYNCED)
    [remote] = sandbox.state("kapture")["tickets"]
    assert ticket.remote_id == remote["ticket_id"]
    assert ticket.remote_url.endswith(remote["ticket_id"])
    assert ticket.synced_revision == ticket.revision == 1
    [attempt] = SyncAttempt.objects.filter(ticket=ticket)
    assert (attempt.operation, attempt.outcome, attempt.http_status) == ("create", "success", 200)
    assert attempt.request_headers["Authorization"] == "[redacted]"
    token = sandbox.credentials["kapture"]["token"]
    recorded = json.dumps(
        [
            attempt.request_url,
            attempt.request_headers,
            attempt.request_body,
            attempt.response_body,
            attempt.error,
        ]
    )
    assert token not in recorded
    assert "Printer on fire" in attempt.request_body


def test_a_wrong_token_fails_with_kaptures_message_and_is_not_retried(worker, sandbox, account_factory):
    account = account_factory("kapture", credentials={"token": "wrong-token-value"})
    ticket = settled(create(account), SyncState.FAILED)
    # The account's problem, not the ticket's: said so, with Kapture's own words.
    assert ticket.account_problem and ticket.last_error.startswith(
        "Sandbox kapture's credentials were refused by Kapture CX (Kapture CX said: Invalid Auth Key)."
    )
    assert ticket.attempts == 1
    assert SyncAttempt.objects.filter(ticket=ticket).count() == 1
    account.refresh_from_db()
    assert account.consecutive_failures == 1 and "Invalid Auth Key" in account.last_error
    assert account.problem_since is not None


def test_an_http_200_failure_body_is_a_failure_never_a_success(worker, sandbox, account_factory):
    ticket = settled(create(account_factory("kapture"), title="   "), SyncState.FAILED)
    assert ticket.last_error == "Title: title is missing"  # the field it names, in the form's words
    assert not ticket.account_problem
    assert ticket.remote_id == ""
    [attempt] = SyncAttempt.objects.filter(ticket=ticket)
    assert attempt.http_status == 200 and attempt.outcome == "failed"


def test_a_transient_error_is_retried_until_synced(worker, sandbox, account_factory):
    sandbox.faults(script=["503", "429"], retry_after=1)
    ticket = settled(create(account_factory("kapture")), SyncState.SYNCED)
    outcomes = list(
        SyncAttempt.objects.filter(ticket=ticket).order_by("started_at").values_list("http_status", "outcome")
    )
    assert outcomes == [(503, "retry"), (429, "retry"), (200, "success")]
    assert len(sandbox.state("kapture")["tickets"]) == 1


def test_a_create_whose_answer_was_lost_is_held_and_never_reposted(worker, sandbox, account_factory):
    sandbox.faults(script=["lost"])
    ticket = settled(create(account_factory("kapture")), SyncState.NEEDS_ATTENTION)
    assert "may now exist in Kapture CX" in ticket.last_error
    assert len(sandbox.state("kapture")["tickets"]) == 1  # applied once
    sync.sweep()
    ticket.refresh_from_db()
    assert ticket.sync_state == SyncState.NEEDS_ATTENTION
    assert len(sandbox.state("kapture")["tickets"]) == 1  # and not posted again


def test_an_edit_sends_a_full_update_in_order(worker, sandbox, account_factory):
    ticket = settled(create(account_factory("kapture")), SyncState.SYNCED)
    services.update_ticket(ticket=ticket, changes={"status": "on_hold"})
    services.update_ticket(ticket=ticket, changes={"status": "resolved"})

    def remote_resolved():
        ticket.refresh_from_db()
        return ticket.sync_state == SyncState.SYNCED and ticket.synced_revision == ticket.revision == 3

    wait_for(remote_resolved, message="the update did not reach Kapture")
    [remote] = sandbox.state("kapture")["tickets"]
    assert remote["substatus"] == "RS"  # the last change wins, whatever the timing


@pytest.mark.parametrize("edited", ["while the first update is in flight", "after it timed out"])
def test_an_update_still_in_flight_after_a_timeout_is_not_overtaken_by_the_next(
    worker, sandbox, account_factory, edited
):
    # Kapture applies the first update 0.6 s after the worker stopped waiting for it; the
    # agent's next change is saved meanwhile. Sent at once, the newer state would land first
    # and be overwritten by the late one, while the console said "synced".
    ticket = settled(create(account_factory("kapture", timeout=1.0)), SyncState.SYNCED)
    sandbox.faults(script=["slow"], slow_seconds=1.6)
    services.update_ticket(ticket=ticket, changes={"status": "on_hold"})
    if edited == "after it timed out":  # the edit itself queues a push at once
        timed_out = SyncAttempt.objects.filter(ticket=ticket, operation="update", outcome="retry")
        wait_for(timed_out.exists, message="the first update did not time out")
    else:
        wait_for(
            lambda: Ticket.objects.get(pk=ticket.pk).sync_state == SyncState.SENDING,
            message="the first update was not sent",
        )
    services.update_ticket(ticket=Ticket.objects.get(pk=ticket.pk), changes={"status": "resolved"})

    def synced_latest():
        ticket.refresh_from_db()
        return ticket.sync_state == SyncState.SYNCED and ticket.synced_revision == ticket.revision

    wait_for(synced_latest, message="the newer change was not synced")
    timed_out, retried = SyncAttempt.objects.filter(ticket=ticket, operation="update").order_by("started_at")
    late_request_done = timed_out.started_at + timedelta(seconds=1.6 + 0.5)
    time.sleep(max(0.0, (late_request_done - timezone.now()).total_seconds()))
    [remote] = sandbox.state("kapture")["tickets"]
    assert remote["substatus"] == "RS"  # resolved, not the late "on hold"
    assert (timed_out.outcome, retried.outcome) == ("retry", "success")
    assert (retried.started_at - timed_out.started_at).total_seconds() >= 1.0 + 1.0  # timeout + settle
    assert ticket.settle_until is None  # the sync that followed ended the settle window


def test_the_sweeper_publishes_a_ticket_whose_message_was_lost(worker, sandbox, account_factory):
    account = account_factory("kapture")
    # Saved as pending without a message, as if the broker lost it.
    ticket = Ticket.objects.create(account=account, title="Lost message", revision=1)
    assert sync.sweep()["published"] == 1
    settled(ticket, SyncState.SYNCED)


def test_a_row_abandoned_by_a_dead_worker_is_recovered(worker, sandbox, account_factory, settings):
    account = account_factory("kapture")
    long_ago = timezone.now() - timedelta(seconds=settings.SYNC_LEASE + 5)
    creating = Ticket.objects.create(
        account=account,
        title="Died while creating",
        revision=1,
        sync_state=SyncState.SENDING,
        attempts=1,
        lease_renewed_at=long_ago,
    )
    updating = Ticket.objects.create(
        account=account,
        title="Died while updating",
        revision=2,
        synced_revision=1,
        sync_state=SyncState.SENDING,
        attempts=1,
        lease_renewed_at=long_ago,
        remote_id="999",
    )
    assert sync.sweep()["recovered"] == 2
    creating.refresh_from_db()
    assert creating.sync_state == SyncState.NEEDS_ATTENTION
    assert "may now exist" in creating.last_error
    updating.refresh_from_db()
    assert updating.sync_state == SyncState.PENDING  # an update is simply sent again
    sync.sweep()
    settled(updating, SyncState.FAILED)  # Kapture has no ticket 999: its own words come back
    assert updating.last_error == "No Data found/ticket_id is missing"


def test_a_retry_after_failure_syncs_once_the_cause_is_fixed(worker, sandbox, account_factory):
    account = account_factory("kapture", credentials={"token": "wrong-token-value"})
    ticket = settled(create(account), SyncState.FAILED)
    account.set_credentials(sandbox.credentials["kapture"])
    account.save()
    services.retry_sync(ticket=ticket)
    settled(ticket, SyncState.SYNCED)
