"""What a person does with a ticket that needs attention: link, cancel, retry."""

import pytest

from tests.helpers import refreshed, wait_for
from tickets import services, sync
from tickets.models import SyncAttempt, SyncState, Ticket

pytestmark = pytest.mark.worker


def settled(ticket: Ticket, state: str) -> Ticket:
    wait_for(lambda: refreshed(ticket).sync_state == state, message=f"{ticket} stayed {ticket.sync_state}")
    return ticket


def held_create(sandbox, account) -> Ticket:
    """A create whose answer was lost: it exists in Kapture, the console does not know its id."""
    sandbox.faults(script=["lost"])
    ticket = services.create_ticket(account=account, title="Printer on fire")
    return settled(ticket, SyncState.NEEDS_ATTENTION)


def test_linking_the_remote_id_marks_the_ticket_synced_without_posting_again(
    worker, sandbox, account_factory
):
    account = account_factory("kapture")
    ticket = held_create(sandbox, account)
    [remote] = sandbox.state("kapture")["tickets"]
    ticket = services.link_remote_id(
        ticket=ticket, remote_id=remote["ticket_id"], remote_number=str(remote["id"])
    )
    assert (ticket.sync_state, ticket.synced_revision, ticket.revision) == ("synced", 1, 1)
    assert ticket.last_error == ""

    services.update_ticket(ticket=ticket, changes={"status": "resolved"})  # later edits reach it
    wait_for(lambda: refreshed(ticket).synced_revision == 2, message="the update was not sent")
    [remote] = sandbox.state("kapture")["tickets"]
    assert remote["substatus"] == "RS"
    assert SyncAttempt.objects.filter(ticket=ticket, operation="create").count() == 1


def test_linking_after_an_edit_sends_the_edit_as_an_update(worker, sandbox, account_factory):
    account = account_factory("kapture")
    ticket = held_create(sandbox, account)
    services.update_ticket(ticket=ticket, changes={"status": "on_hold"})
    assert refreshed(ticket).sync_state == SyncState.NEEDS_ATTENTION  # held while unresolved
    [remote] = sandbox.state("kapture")["tickets"]
    services.link_remote_id(ticket=ticket, remote_id=remote["ticket_id"])
    settled(ticket, SyncState.SYNCED)
    assert ticket.synced_revision == ticket.revision == 2
    assert len(sandbox.state("kapture")["tickets"]) == 1
    assert sandbox.state("kapture")["tickets"][0]["substatus"] == "IN"


def test_link_is_refused_unless_the_ticket_needs_attention(worker, sandbox, account_factory):
    ticket = services.create_ticket(account=account_factory("kapture"), title="fine")
    settled(ticket, SyncState.SYNCED)
    with pytest.raises(services.TicketActionError, match="only a ticket that needs attention"):
        services.link_remote_id(ticket=ticket, remote_id="123")


def test_a_cancelled_sync_is_never_sent(worker, sandbox, account_factory):
    account = account_factory("kapture")
    ticket = held_create(sandbox, account)
    ticket = services.cancel_sync(ticket=ticket)
    assert ticket.sync_state == SyncState.CANCELLED
    services.update_ticket(ticket=ticket, changes={"title": "changed after cancelling"})
    sync.sweep()
    assert refreshed(ticket).sync_state == SyncState.CANCELLED
    assert SyncAttempt.objects.filter(ticket=ticket).count() == 1  # only the lost create
    assert len(sandbox.state("kapture")["tickets"]) == 1


def test_an_account_may_choose_to_resend_unknown_creates(worker, sandbox, account_factory):
    account = account_factory("kapture", settings={"retry_unknown_creates": True})
    sandbox.faults(script=["lost"])
    ticket = settled(services.create_ticket(account=account, title="Printer on fire"), SyncState.SYNCED)
    outcomes = list(
        SyncAttempt.objects.filter(ticket=ticket).order_by("started_at").values_list("outcome", flat=True)
    )
    assert outcomes == ["retry", "success"]
    assert len(sandbox.state("kapture")["tickets"]) == 2  # the admin accepted possible duplicates
