"""A generic account configured as Kapture, synced end to end by a real worker: a ticket made
in the console is created there, a status change goes out, a change made there comes back."""

import pytest
import requests

from providers.generic.worked import load_example
from tests.helpers import refreshed, wait_for
from tickets import services
from tickets.models import SyncAttempt, SyncState
from tickets.tasks import pull_remote_state

pytestmark = pytest.mark.worker


def settle(ticket, revision: int):
    def done():
        ticket.refresh_from_db()
        return (
            ticket.sync_state == SyncState.SYNCED
            and ticket.synced_revision >= revision
            or (ticket.sync_state in (SyncState.FAILED, SyncState.NEEDS_ATTENTION))
        )

    wait_for(done, message=f"{ticket.reference} stayed {ticket.sync_state}")
    assert ticket.sync_state == SyncState.SYNCED, ticket.last_error
    return ticket


def held_by_kapture(sandbox) -> list[dict]:
    return sandbox.state("kapture")["tickets"]


def test_a_generic_account_configured_as_kapture_syncs_both_ways(worker, sandbox, account_factory):
    token = sandbox.credentials["kapture"]["token"]
    account = account_factory(
        "generic",
        name="Kapture through the generic provider",
        base_url=sandbox.base_url("kapture"),
        api_config=load_example("kapture"),
        credentials={"token": token},
    )
    assert account.provider_class.label == "Kapture CX (generic)"
    ticket = services.create_ticket(
        account=account,
        title="Printer on fire (generic)",
        description="Third floor, room 301",
        requester_email="tim@acme.com",
        requester_name="Tim",
        priority="high",
    )
    settle(ticket, 1)
    [held] = held_by_kapture(sandbox)
    assert ticket.remote_id == held["ticket_id"]
    assert held["title"] == "Printer on fire (generic)"
    assert f"[Ticket Console {ticket.reference}]" in held["ticket_details"]
    assert ticket.remote_url.startswith("https://sandbox.kapturecrm.com/")

    # A status change goes out through the configured update, mapped by the status map.
    ticket = services.update_ticket(ticket=ticket, changes={"status": "on_hold"})
    settle(ticket, 2)
    assert held_by_kapture(sandbox)[0]["substatus"] == "IN"

    # A Kapture agent resolves it; the beat's pull reads it back through the configured fetch.
    answer = requests.post(
        f"{sandbox.base_url('kapture')}/update-ticket-from-other-source.html/v.2.0",
        json=[{"ticket_id": ticket.remote_id, "sub_status": "RS"}],
        headers={"Authorization": f"Basic {token}"},
        timeout=5,
    )
    assert answer.json()["status"] == "success"
    assert pull_remote_state.apply().get() == 1  # the generic account is among those pulled
    wait_for(lambda: refreshed(ticket).status == "resolved", message="the remote change was not pulled")
    ticket = refreshed(ticket)
    assert (ticket.remote_status, ticket.sync_state, ticket.revision) == ("RS", SyncState.SYNCED, 2)

    attempts = SyncAttempt.objects.filter(ticket=ticket)
    assert {(a.operation, a.outcome) for a in attempts} >= {
        ("create", "success"),
        ("update", "success"),
        ("fetch", "success"),
    }
    for attempt in attempts:  # the token never reaches a record
        assert token not in f"{attempt.request_headers} {attempt.request_body} {attempt.response_body}"
    assert len(held_by_kapture(sandbox)) == 1
