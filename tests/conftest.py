"""Shared fixtures: the sandbox over real HTTP, a real Celery worker process, accounts."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections

from console import celery_app
from console.worker_command import worker_command
from providers.egress import ALLOW_LIST_SETTING, allow_in_this_run
from providers.sandbox.registry import EMULATORS
from providers.sandbox.server import serve_in_thread
from tests.helpers import Sandbox, make_account

ROOT = Path(__file__).resolve().parent.parent
WORKER_READY_TIMEOUT = 90
#: The tests' settings (pyproject), read before any test overrides settings: an override
#: (pytest-django's `settings` fixture) reports SETTINGS_MODULE as None.
SETTINGS_MODULE = settings.SETTINGS_MODULE


@pytest.fixture(scope="session")
def sandbox_server():
    credentials = {cls.name: cls.generate_credentials() for cls in EMULATORS}
    server = serve_in_thread(credentials)
    # Provider calls may reach loopback only when allow-listed: exactly the sandbox's host:port,
    # in this process and (through worker_env) in the workers.
    before = allow_in_this_run("{}:{}".format(*server.server_address[:2]))
    yield Sandbox(server, credentials)
    server.shutdown()
    server.server_close()
    setattr(settings, ALLOW_LIST_SETTING, before)
    os.environ[ALLOW_LIST_SETTING] = ",".join(before)


@pytest.fixture
def sandbox(sandbox_server):
    """The session's sandbox, emptied and without faults for each test."""
    sandbox_server.reset()
    yield sandbox_server
    sandbox_server.reset()


@pytest.fixture
def account_factory(sandbox):
    def factory(kind: str, **kwargs):
        return make_account(sandbox, kind, **kwargs)

    return factory


@pytest.fixture
def nudges(monkeypatch):
    """The account nudges published, kept here (account ids, in order): for tests that play
    the worker themselves (tickets/batch.py's `push_account` in-process), so that a session
    worker draining the same broker never takes their rows."""
    from tickets import dispatch

    published: list[int] = []
    monkeypatch.setattr(dispatch, "nudge_accounts", lambda ids, **kwargs: published.extend(ids) or [])
    return published


# --- a real Celery worker ------------------------------------------------------------------
def _database_url() -> str:
    """The URL of the test database pytest-django created, for processes we start."""
    db = connections["default"].settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture(scope="session")
def broker_url(tmp_path_factory) -> str:
    """The tests' own broker, so a console running on this machine never sees their tasks."""
    url = os.environ.get("TEST_CELERY_BROKER_URL") or (
        f"sqla+sqlite:///{tmp_path_factory.mktemp('broker') / 'broker.sqlite3'}"
    )
    celery_app.conf.broker_url = url
    return url


def worker_env(broker_url: str, **overrides: str) -> dict[str, str]:
    """The environment of a worker process on the test database and broker (also used by
    tests/faults_harness.py, which starts and kills workers of its own). Start them after
    the sandbox_server fixture: its address is in the allow-list they get."""
    return {
        **os.environ,
        # The test settings: the workers know the test-only provider the tests register.
        "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": broker_url,
        "CONSOLE_ENCRYPTION_KEYS": ",".join(settings.CONSOLE_ENCRYPTION_KEYS),
        ALLOW_LIST_SETTING: ",".join(getattr(settings, ALLOW_LIST_SETTING)),
        "SYNC_BACKOFF_BASE": "0.3",
        "SYNC_BACKOFF_CAP": "2",
        # Sandbox "slow" answers in these tests land well under a second after the client
        # gave up; an unanswered update's retry waits this long (production: a minute).
        "SYNC_UPDATE_SETTLE": "1",
        "PYTHONUNBUFFERED": "1",
        **overrides,
    }


@pytest.fixture(scope="session")
def worker_process(django_db_setup, django_db_blocker, broker_url, tmp_path_factory, sandbox_server):
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    env = worker_env(broker_url)
    if broker_url.startswith("redis://"):
        import redis

        redis.Redis.from_url(broker_url).flushdb()
    elif broker_url.startswith(("amqp://", "pyamqp://")):
        # The vhost is the tests' own (scripts/services.sh): what an interrupted earlier run
        # left queued there must not reach this session's worker.
        celery_app.control.purge()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            worker_command(f"test-{os.getpid()}", concurrency=2),
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + WORKER_READY_TIMEOUT
    while b" ready." not in log_path.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"The Celery worker did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)
    yield process
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
    connections.close_all()


@pytest.fixture
def worker(worker_process, transactional_db):
    """A real worker draining the real broker; tests using it commit their data."""
    yield worker_process
    assert worker_process.poll() is None, "the worker died during the test"
    quiesce_worker()


def quiesce_worker(timeout: float = 30.0) -> None:
    """Let the worker go idle before the test database is flushed: a task still holding row
    locks deadlocks PostgreSQL's TRUNCATE, and one still writing leaks rows into the next test."""
    from tickets.models import BulkJob, Reply, SyncState, Ticket

    celery_app.control.purge()  # retries and follow-ups the test left queued never start
    deadline = time.monotonic() + timeout
    busy = True
    while busy and time.monotonic() < deadline:
        busy = (
            Ticket.objects.filter(sync_state=SyncState.SENDING).exists()
            or Reply.objects.filter(sync_state=SyncState.SENDING).exists()
            or BulkJob.objects.filter(state=BulkJob.State.RUNNING).exists()
        )
        time.sleep(0.2)
    time.sleep(0.5)  # a task between its claim's commit and its next statement
