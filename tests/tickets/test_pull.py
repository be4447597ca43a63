"""Pull: remote status read back through the status map, with the conflict rule."""

import io
import json

import pytest
import requests
from django.core.management import CommandError, call_command
from django.db.models import F

from tests.helpers import refreshed, wait_for
from tickets import pull, services
from tickets.models import SyncAttempt, SyncState, Ticket
from tickets.tasks import pull_remote_state

pytestmark = pytest.mark.worker


def synced(account, count: int = 1, **fields) -> list[Ticket]:
    defaults = {"description": "Third floor", "requester_email": "tim@acme.com"}
    tickets = [
        services.create_ticket(account=account, title=f"Printer {n} on fire", **{**defaults, **fields})
        for n in range(count)
    ]
    for ticket in tickets:
        wait_for(lambda t=ticket: refreshed(t).sync_state == SyncState.SYNCED, message=f"{ticket} not synced")
    return tickets


def kapture_agent_sets(sandbox, ticket: Ticket, sub_status: str) -> None:
    """What an agent does in Kapture: change the ticket's sub-status there."""
    response = requests.post(
        f"{sandbox.base_url('kapture')}/update-ticket-from-other-source.html/v.2.0",
        json=[{"ticket_id": ticket.remote_id, "sub_status": sub_status}],
        headers={"Authorization": f"Basic {sandbox.credentials['kapture']['token']}"},
        timeout=5,
    )
    assert response.json()["status"] == "success"


def test_a_remote_status_change_is_pulled_in_batches_and_not_echoed_back(worker, sandbox, account_factory):
    account = account_factory("kapture")
    account_factory("knight", name="Knight cannot be read")
    tickets = synced(account, 3)
    kapture_agent_sets(sandbox, tickets[0], "RS")
    history_before = len(sandbox.state("kapture")["tickets"][0]["history"])

    assert pull_remote_state.apply().get() == 1  # one pull for Kapture; Knight has no read endpoint
    wait_for(lambda: refreshed(tickets[0]).status == "resolved", message="the remote status was not pulled")
    resolved = refreshed(tickets[0])
    assert (resolved.remote_status, resolved.sync_state, resolved.revision) == ("RS", "synced", 1)
    assert [refreshed(t).status for t in tickets[1:]] == ["new", "new"]
    [fetch] = SyncAttempt.objects.filter(operation="fetch")
    assert fetch.outcome == "success"
    asked_for = json.loads(fetch.request_body)["ticket_ids"].split(",")
    assert sorted(asked_for) == sorted(t.remote_id for t in tickets)
    # Applied here without a new revision: nothing is sent back to Kapture.
    assert not SyncAttempt.objects.filter(operation="update").exists()
    assert len(sandbox.state("kapture")["tickets"][0]["history"]) == history_before


def test_a_status_changed_on_both_sides_needs_attention_and_nothing_is_overwritten(
    worker, sandbox, account_factory
):
    account = account_factory("kapture")
    [ticket] = synced(account)
    kapture_agent_sets(sandbox, ticket, "RS")
    # A console edit not sent yet (waiting for its retry slot, say).
    Ticket.objects.filter(pk=ticket.pk).update(
        status="on_hold",
        revision=F("revision") + 1,
        sync_state=SyncState.PENDING,
        next_attempt_at="2099-01-01T00:00:00Z",
    )
    result = pull.pull_account(account=account)
    assert result.conflicts == 1
    ticket = refreshed(ticket)
    assert ticket.sync_state == SyncState.NEEDS_ATTENTION
    assert ticket.status == "on_hold"  # the console's value kept
    assert "the console has On hold, Kapture CX now has Resolved (RS)." in ticket.last_error
    assert sandbox.state("kapture")["tickets"][0]["substatus"] == "RS"  # the remote's value kept

    services.retry_sync(ticket=ticket)  # a person decides: the console's value wins
    wait_for(lambda: refreshed(ticket).sync_state == SyncState.SYNCED, message="the retry did not sync")
    assert sandbox.state("kapture")["tickets"][0]["substatus"] == "IN"
    assert pull.pull_account(account=account).conflicts == 0
    assert refreshed(ticket).status == "on_hold"


def test_motadata_is_read_one_incident_per_call(worker, sandbox, account_factory):
    account = account_factory("motadata")
    tickets = synced(account, 3)
    emulator = sandbox.server.emulators["motadata"]
    with emulator.lock:  # what a Motadata technician does
        emulator.incidents[int(tickets[1].remote_id)]["status"] = "In Progress"
    result = pull.pull_account(account=account)
    assert (result.fetched, result.applied, result.errors) == (3, 1, [])
    assert [refreshed(t).status for t in tickets] == ["new", "in_progress", "new"]
    fetches = SyncAttempt.objects.filter(operation="fetch")
    assert sorted(fetches.values_list("ticket_id", flat=True)) == sorted(t.pk for t in tickets)
    assert {a.request_method for a in fetches} == {"GET"}


def test_keliweb_staff_answers_are_pulled(worker, sandbox, account_factory):
    account = account_factory("keliweb")
    [ticket] = synced(account)
    sandbox.server.emulators["keliweb"].staff_reply(int(ticket.remote_id), "Rebooted it.", status="Answered")
    assert pull.pull_account(account=account).applied == 1
    ticket = refreshed(ticket)
    assert (ticket.status, ticket.remote_status) == ("pending", "Answered")


def test_a_refused_fetch_is_recorded_and_counts_against_the_account(worker, sandbox, account_factory):
    account = account_factory("kapture")
    [ticket] = synced(account)
    account.set_credentials({"token": "wrong-token-value"})
    account.save()
    result = pull.pull_account(account=account)
    assert result.errors == ["Invalid Auth Key"]
    [fetch] = SyncAttempt.objects.filter(operation="fetch")
    assert (fetch.outcome, fetch.ticket_id, fetch.error) == ("failed", ticket.pk, "Invalid Auth Key")
    assert "wrong-token-value" not in fetch.request_headers["Authorization"]
    account.refresh_from_db()
    assert account.consecutive_failures == 1
    assert refreshed(ticket).sync_state == SyncState.SYNCED


def test_the_sync_command_publishes_pulls_and_waits_for_one_account(worker, sandbox, account_factory):
    account = account_factory("kapture")
    other = account_factory("kapture", name="Other Kapture")
    [ticket] = synced(account)
    kapture_agent_sets(sandbox, ticket, "CL")
    # Saved as pending without a message (a lost publish), on both accounts.
    waiting = Ticket.objects.create(account=account, title="Lost message", revision=1)
    untouched = Ticket.objects.create(account=other, title="Other account", revision=1)
    out = io.StringIO()
    call_command("sync", "--account", account.name, "--pull", "--wait", "--timeout", "30", stdout=out)
    assert refreshed(waiting).sync_state == SyncState.SYNCED
    assert refreshed(ticket).status == "closed"
    assert refreshed(untouched).sync_state == SyncState.PENDING
    text = out.getvalue()
    assert "Published 1 due push(es)." in text
    assert f"Pulled {account.name}: 1 read, 1 applied" in text  # the other was not created yet
    assert "Synced 2" in text and "Pending 0" in text


def test_the_sync_command_names_an_unknown_account_and_one_it_cannot_read(worker, account_factory):
    account_factory("kapture")
    with pytest.raises(CommandError, match="No account named 'Nope'. Accounts: Sandbox kapture"):
        call_command("sync", "--account", "Nope")
    knight = account_factory("knight")
    out = io.StringIO()
    call_command("sync", "--account", knight.name, "--pull", stdout=out)
    assert f"Not pulled {knight.name}: Knight has no read-back endpoint" in out.getvalue()


def test_a_pull_stops_at_its_time_budget_and_the_rest_waits_for_the_next_run(
    worker, sandbox, account_factory, settings
):
    account = account_factory("kapture")
    [ticket] = synced(account)
    settings.SYNC_PULL_TIME_BUDGET = -1
    assert pull.pull_account(account=account).fetched == 0
    assert not SyncAttempt.objects.filter(operation="fetch").exists()
    assert refreshed(ticket).pulled_at is None  # first in line next time


def test_an_answer_read_before_a_push_finished_is_left_for_the_next_pull(worker, sandbox, account_factory):
    account = account_factory("kapture")
    [ticket] = synced(account)
    read_before = Ticket.objects.get(pk=ticket.pk)
    services.update_ticket(ticket=ticket, changes={"status": "resolved"})  # sent while we read
    wait_for(lambda: refreshed(ticket).synced_revision == 2, message="the update was not sent")
    # The remote answer ("US") predates the update: applying it would undo the console's edit.
    stale = pull.apply_remote_status(ticket_id=ticket.pk, remote_status="US", read_before=read_before)
    assert stale == "skipped"
    assert refreshed(ticket).status == "resolved"
    assert pull.pull_account(account=account).applied == 0  # a fresh read agrees with the console
    assert refreshed(ticket).status == "resolved"


@pytest.mark.django_db
def test_a_remote_status_read_while_an_unanswered_update_settles_is_not_a_conflict(account_factory):
    # Our "on hold" update timed out and may still land; the agent has since set "resolved".
    # Kapture showing "on hold" now is our own late request, not a change made there.
    from datetime import timedelta

    from django.utils import timezone

    account = account_factory("kapture")
    ticket = Ticket.objects.create(
        account=account,
        title="Printer",
        revision=3,
        synced_revision=1,
        status="resolved",
        sync_state=SyncState.PENDING,
        remote_id="42",
        remote_status="US",
        synced_fields={"status": "new", "remote_status": "US"},
        settle_until=timezone.now() + timedelta(seconds=60),
    )
    on_hold = account.status_map["outbound"]["on_hold"]
    assert pull.apply_remote_status(ticket_id=ticket.pk, remote_status=on_hold) == "skipped"
    assert (refreshed(ticket).sync_state, ticket.status) == (SyncState.PENDING, "resolved")

    Ticket.objects.filter(pk=ticket.pk).update(settle_until=timezone.now() - timedelta(seconds=1))
    # Once settled, the same reading is judged as usual: both sides changed.
    assert pull.apply_remote_status(ticket_id=ticket.pk, remote_status=on_hold) == "conflict"
