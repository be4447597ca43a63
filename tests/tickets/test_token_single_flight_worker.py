"""The issue's case end to end: 10 tickets queued for a fresh Motadata account, then a real
Celery worker with 4 processes starts and drains them: exactly one token call.

The tickets are queued before the worker starts, so its four processes take four of them at
once, each needing the token (the race the issue measured as 3 password grants). That the
renewal is single-flight whatever the interleaving is shown deterministically, with threads on
their own connections, in tests/providers/test_token_single_flight.py."""

from __future__ import annotations

import pytest

from providers.motadata import MotadataProvider
from tests.faults_harness import WorkerFleet
from tests.helpers import wait_for
from tickets import services
from tickets.models import SyncAttempt, SyncState, Ticket

pytestmark = pytest.mark.worker


@pytest.fixture
def fleet(transactional_db, broker_url, sandbox, tmp_path):
    workers = WorkerFleet(broker_url, tmp_path, concurrency=4)
    yield workers
    workers.stop_all()


def test_ten_tickets_on_a_fresh_account_and_four_worker_processes_make_one_token_call(
    fleet, sandbox, account_factory
):
    account = account_factory(
        "motadata",
        rate_limit=MotadataProvider.default_rate_limit,
        rate_burst=MotadataProvider.default_rate_burst,
    )
    for n in range(10):
        services.create_ticket(account=account, title=f"Printer {n} on fire", requester_email="tim@acme.com")
    fleet.start(1)

    wait_for(
        lambda: Ticket.objects.filter(sync_state=SyncState.SYNCED).count() == 10,
        timeout=60,
        message="the ten tickets were not all synced",
    )
    fleet.assert_alive()
    assert sandbox.state("motadata")["grants"] == {"password": 1, "refresh_token": 0}
    assert len(sandbox.state("motadata")["incidents"]) == 10
    sign_ins = SyncAttempt.objects.filter(account=account, operation=SyncAttempt.Operation.SIGN_IN)
    assert sign_ins.count() == 1
