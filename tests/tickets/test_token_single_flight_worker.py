"""The issue's case end to end: 10 tickets queued for a fresh Motadata account, drained by a
real Celery worker with 4 processes, cost exactly one token call."""

from __future__ import annotations

from datetime import timedelta

import pytest

from providers.motadata import MotadataProvider
from tests.faults_harness import WorkerFleet
from tests.helpers import wait_for
from tickets import services
from tickets.models import SyncAttempt, SyncState, Ticket

pytestmark = pytest.mark.worker


@pytest.fixture
def four_process_worker(transactional_db, broker_url, sandbox, tmp_path):
    fleet = WorkerFleet(broker_url, tmp_path, concurrency=4)
    fleet.start(1)
    yield fleet
    fleet.stop_all()


def test_ten_tickets_on_a_fresh_account_and_four_worker_processes_make_one_token_call(
    four_process_worker, sandbox, account_factory
):
    account = account_factory("motadata", rate_limit=MotadataProvider.default_rate_limit,
                              rate_burst=MotadataProvider.default_rate_burst)
    tickets = [services.create_ticket(account=account, title=f"Printer {n} on fire",
                                      requester_email="tim@acme.com") for n in range(10)]

    wait_for(lambda: Ticket.objects.filter(sync_state=SyncState.SYNCED).count() == 10, timeout=60,
             message="the ten tickets were not all synced")
    four_process_worker.assert_alive()
    assert sandbox.state("motadata")["grants"] == {"password": 1, "refresh_token": 0}
    assert len(sandbox.state("motadata")["incidents"]) == 10
    sign_ins = SyncAttempt.objects.filter(account=account, operation=SyncAttempt.Operation.SIGN_IN)
    assert sign_ins.count() == 1
    assert {t.pk for t in tickets} == set(Ticket.objects.values_list("pk", flat=True))
    # The race was real: creates ran at the same time in several processes, each needing the
    # token (their calls overlap in the audit trail; one process runs one task at a time).
    spans = [(a.started_at, a.started_at + timedelta(milliseconds=a.duration_ms))
             for a in SyncAttempt.objects.filter(account=account, operation=SyncAttempt.Operation.CREATE)]
    most_at_once = max(sum(1 for start, end in spans if start <= moment < end) for moment, _ in spans)
    assert most_at_once >= 2, spans
