"""Every provider end to end: created, then updated where the API allows, by a real worker."""

import pytest

from providers.registry import EMULATORS, load
from tests.helpers import wait_for
from tickets import services
from tickets.models import SyncAttempt, SyncState

pytestmark = pytest.mark.worker


def settle(ticket, revision: int):
    def check():
        ticket.refresh_from_db()
        done = ticket.sync_state in (SyncState.SYNCED, SyncState.FAILED, SyncState.NEEDS_ATTENTION)
        return done and (ticket.sync_state != SyncState.SYNCED or ticket.synced_revision >= revision)

    wait_for(check, message=f"{ticket.reference} stayed {ticket.sync_state}")
    assert ticket.sync_state == SyncState.SYNCED, ticket.last_error
    return ticket


def remote_count(sandbox, kind: str) -> int:
    return len(load(EMULATORS[kind]).held_tickets(sandbox.state(kind)))


@pytest.mark.parametrize("kind", sorted(EMULATORS))
def test_a_ticket_is_created_and_updated_in_each_provider(kind, worker, sandbox, account_factory):
    account = account_factory(kind)
    ticket = services.create_ticket(
        account=account,
        title=f"Printer on fire ({kind})",
        description="Third floor, room 301",
        requester_email="tim@acme.com",
        requester_name="Tim",
        priority="high",
    )
    settle(ticket, 1)
    assert ticket.remote_id
    assert remote_count(sandbox, kind) == 1

    ticket = services.update_ticket(ticket=ticket, changes={"status": "resolved"})
    if account.provider_class.supports("update"):
        settle(ticket, 2)
        operations = SyncAttempt.objects.filter(ticket=ticket, outcome="success").values_list(
            "operation", flat=True
        )
        assert "update" in set(operations)
    else:  # e.g. Keliweb: kept here, visibly (never "synced"), for the provider's own reason
        assert ticket.sync_state == SyncState.LOCAL_ONLY and ticket.revision == 2
        provider_class = account.provider_class
        assert ticket.local_only_fields == ["status"]
        reason = provider_class.reason_kept_here(ticket.local_only_fields)
        assert reason == provider_class.unsupported_reasons["update"]
    assert remote_count(sandbox, kind) == 1  # never a second remote ticket
