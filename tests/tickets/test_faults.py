"""Proof of the sync engine under faults: hundreds of tickets across every registered provider
(the test settings' test-only one too), the sandbox failing a fifth of all calls, workers
SIGKILLed and the broker restarted mid-run.

Each test ends with the three invariants of tests/faults_harness.py: no ticket lost, no
ticket created twice remotely, and every synced ticket's remote copy equal to the console's.
Creates whose outcome is unknown ("slow", "lost", "garbage", a dropped connection, a 500) are
held as needs-attention rather than re-posted, except on Knight, whose caller-chosen
ticketId makes a resend safe; that is expected, and the invariants hold all the same.
"""

import shutil

import pytest

from providers.models import ProviderAccount
from tests.faults_harness import (
    ACCOUNT_TIMEOUT,
    ALL_FAULTS,
    KINDS,
    REQUEUE_AFTER,
    SENDING_DEADLINE,
    SLOW_SECONDS,
    PrivateRedis,
    SharedRabbitMQ,
    WorkerFleet,
    check_invariants,
    create_tickets,
    drive,
    publishing_to,
    summary,
    unsettled_count,
    wait_for_sending,
)

pytestmark = [pytest.mark.faults, pytest.mark.worker]


@pytest.fixture
def fast_sweeper(settings):
    """The sweeper the test calls in-process takes back abandoned rows and lost messages
    within seconds, as the workers retry."""
    settings.SYNC_LEASE = SENDING_DEADLINE
    settings.SYNC_REQUEUE_AFTER = REQUEUE_AFTER
    settings.SYNC_BACKOFF_BASE = 0.3
    settings.SYNC_BACKOFF_CAP = 2


@pytest.fixture
def fleet(transactional_db, fast_sweeper, broker_url, tmp_path):
    """Workers of the test's own on the tests' broker (stopped before the database is flushed)."""
    workers = WorkerFleet(broker_url, tmp_path)
    yield workers
    workers.stop_all()


@pytest.fixture
def private_redis():
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server (scripts/services.sh installs it for the PostgreSQL + Redis pass)")
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_fleet(transactional_db, fast_sweeper, private_redis, tmp_path):
    """Workers, and this process's publisher, on a Redis of the test's own."""
    workers = WorkerFleet(private_redis.url, tmp_path)
    with publishing_to(private_redis.url):
        yield workers
        workers.stop_all()


@pytest.fixture
def rabbitmq(broker_url):
    """The machine's RabbitMQ, when it is the tests' broker (scripts/test's third pass)."""
    if not broker_url.startswith(("amqp://", "pyamqp://")):
        pytest.skip("runs on RabbitMQ: scripts/test's PostgreSQL + RabbitMQ pass")
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("needs rabbitmqctl (scripts/services.sh installs RabbitMQ)")
    return SharedRabbitMQ()


def fault_account(account_factory, kind: str, **fields):
    """An account of the fault suite: a short timeout, so a "slow" answer costs little, and a
    3 s breaker cool-down in its own settings, so a trip pauses it for seconds whichever
    worker records it. The session's worker, which helps drain the same broker, runs with the
    production minute; a trip it recorded late in a run held that account's last tickets past
    the run's deadline."""
    demo_settings = ProviderAccount(kind=kind).provider_class.demo_settings
    return account_factory(
        kind, timeout=ACCOUNT_TIMEOUT, settings={**demo_settings, "breaker_cooldown": 3}, **fields
    )


@pytest.fixture
def accounts(account_factory):
    """One account per provider (`fault_account`)."""
    return {kind: fault_account(account_factory, kind, rate_limit=50) for kind in KINDS}


@pytest.fixture
def paced_accounts(account_factory):
    """As `accounts`, each held to 4 calls a second. The batched engine drains hundreds of
    tickets in a few seconds — sooner than a replacement worker starts, or than a fleet is ready
    while the session's worker drains the queue — so a run meant to be killed or to lose its
    broker mid-call has to last: 100 creates and ~33 edits per account take ~40 s, 50 and ~17
    take ~20 s, plus retries."""
    return {kind: fault_account(account_factory, kind, rate_limit=4, rate_burst=1) for kind in KINDS}


def inject_faults(sandbox, rate: float = 0.2) -> None:
    sandbox.faults(rate=rate, kinds=ALL_FAULTS, retry_after=1, slow_seconds=SLOW_SECONDS, seed=20261123)


def assert_invariants(sandbox, run, fleet, title: str, capsys) -> None:
    verdict = check_invariants(sandbox, run.ticket_ids)
    with capsys.disabled():
        print("\n" + summary(title, run, verdict, sandbox.control("faults"), fleet))
    assert verdict.problems == [], "\n".join(verdict.problems[:40])
    synced = sum(counts["synced"] for counts in verdict.outcomes.values())
    assert synced > len(run.ticket_ids) / 2, "most tickets should sync despite the faults"


def test_100_tickets_per_provider_under_a_20_percent_fault_rate_are_neither_lost_nor_duplicated(
    fleet, sandbox, accounts, capsys
):
    fleet.start(2)
    inject_faults(sandbox)
    run = create_tickets(accounts, per_kind=100)
    drive(run, timeout=150, fleet=fleet)
    assert_invariants(sandbox, run, fleet, "20 % faults", capsys)
    assert run.edited > 50


def test_workers_sigkilled_three_times_mid_run_lose_and_duplicate_nothing(
    fleet, sandbox, paced_accounts, capsys
):
    inject_faults(sandbox)
    # Queued first and paced, and killed back to back (each kill waits for the replacement to
    # be ready, a few seconds), so all three land mid-run even when the session's worker helps.
    run = create_tickets(paced_accounts, per_kind=100)
    fleet.start(2)
    unsettled_at_kill = []

    def kill_mid_call():
        wait_for_sending()
        unsettled_at_kill.append(unsettled_count(run))
        fleet.kill_one_and_replace()

    drive(run, timeout=180, fleet=fleet, events=[(0, kill_mid_call)] * 3)
    assert_invariants(
        sandbox, run, fleet, f"3 x SIGKILL (tickets unsettled at each: {unsettled_at_kill})", capsys
    )
    assert fleet.killed == 3 and all(unsettled_at_kill), "each kill must land while work is in flight"


@pytest.mark.redis
def test_a_redis_restart_mid_run_loses_and_duplicates_nothing(
    redis_fleet, private_redis, sandbox, paced_accounts, capsys
):
    fleet = redis_fleet
    inject_faults(sandbox)
    run = create_tickets(paced_accounts, per_kind=50)  # queued first, so the restart lands mid-run
    fleet.start(2)
    unsettled_at_restart = []

    def restart():
        unsettled_at_restart.append(unsettled_count(run))
        private_redis.restart()

    # A worker may die of the restart (kombu, see WorkerFleet.supervise): replaced, as in
    # production; what must not happen is a lost or duplicated ticket.
    drive(run, timeout=150, fleet=fleet, events=[(2, restart)], supervised=True)
    title = f"Redis restart ({unsettled_at_restart[0]} tickets unsettled at it)"
    assert_invariants(sandbox, run, fleet, title, capsys)
    assert unsettled_at_restart[0] > 0, "the restart must land while work is in flight"


@pytest.mark.rabbitmq
def test_a_rabbitmq_restart_mid_run_loses_and_duplicates_nothing(
    fleet, rabbitmq, sandbox, paced_accounts, capsys
):
    inject_faults(sandbox)
    run = create_tickets(paced_accounts, per_kind=50)  # queued first and paced: the restart lands mid-run
    fleet.start(2)
    unsettled_at_restart = []

    def restart_mid_call():
        # At once, while a push is in flight: RabbitMQ hands messages out without polling.
        wait_for_sending()
        unsettled_at_restart.append(unsettled_count(run))
        rabbitmq.restart()

    # Durable queues and persistent messages survive the restart and unacknowledged ones are
    # delivered again; supervised all the same, as in production, in case a worker dies of it.
    drive(run, timeout=150, fleet=fleet, events=[(0, restart_mid_call)], supervised=True)
    title = f"RabbitMQ restart ({unsettled_at_restart[0]} tickets unsettled at it)"
    assert_invariants(sandbox, run, fleet, title, capsys)
    assert unsettled_at_restart[0] > 0, "the restart must land while work is in flight"
