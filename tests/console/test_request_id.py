"""Request ids: in the response, on every log line of the request, and on the worker's lines
for the tasks the request enqueued; LOG_FORMAT=json makes each line one JSON object."""

import io
import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from console.request_id import HEADER, JsonFormatter, RequestIdFilter, current_request_id
from tests.conftest import worker_command, worker_env
from tests.faults_harness import publishing_to

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def json_log():
    """The console.health logger's lines, formatted as LOG_FORMAT=json formats them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("console.health")
    logger.addHandler(handler)
    yield stream
    logger.removeHandler(handler)


def test_a_response_carries_a_new_request_id(client):
    first, second = client.get("/healthz"), client.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{32}", first[HEADER])
    assert first[HEADER] != second[HEADER]


def test_an_incoming_request_id_is_kept_and_a_malformed_one_replaced(client):
    assert client.get("/healthz", HTTP_X_REQUEST_ID="lb-7f3a.42")[HEADER] == "lb-7f3a.42"
    injected = client.get("/healthz", HTTP_X_REQUEST_ID='x"\n{"level": "CRITICAL"}')[HEADER]
    assert re.fullmatch(r"[0-9a-f]{32}", injected)


@pytest.mark.django_db
def test_log_lines_of_a_request_are_json_with_its_id(client, json_log):
    with publishing_to("redis://127.0.0.1:1/0"):  # nothing listens: readyz logs a warning
        response = client.get("/readyz", HTTP_X_REQUEST_ID="req-123")
    assert response.status_code == 503
    [line] = [json.loads(text) for text in json_log.getvalue().splitlines()]
    assert line["request_id"] == "req-123"
    assert (line["level"], line["logger"]) == ("WARNING", "console.health")
    assert line["message"].startswith("readiness: broker unreachable")
    assert line["time"].endswith("+00:00")


def test_a_task_published_during_a_request_carries_its_id(tmp_path):
    from kombu import Connection

    from console.celery import app
    from tickets.tasks import push_ticket

    url = f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}"
    token = current_request_id.set("req-456")
    try:
        with publishing_to(url):
            push_ticket.delay(1)
    finally:
        current_request_id.reset(token)
    with Connection(url) as connection:
        message = connection.SimpleQueue(app.conf.task_default_queue).get(timeout=10)
    assert message.headers["request_id"] == "req-456"


def test_the_settings_make_every_log_line_json(tmp_path):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CONSOLE_", "DATABASE_"))}
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "import logging; logging.getLogger('tickets.sync').warning('pushed %s', 'TC-000001')",
        ],
        cwd=ROOT,
        env={**clean, "CONSOLE_STATE_DIR": str(tmp_path), "LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    [line] = [json.loads(text) for text in result.stderr.splitlines() if text.strip()]
    assert line == {
        **line,
        "level": "WARNING",
        "logger": "tickets.sync",
        "message": "pushed TC-000001",
        "request_id": None,
    }


@pytest.mark.worker
def test_the_worker_logs_a_requests_task_with_the_requests_id(transactional_db, tmp_path):
    broker = f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}"  # this test's own: no other worker takes it
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            worker_command(f"request-id-{os.getpid()}", concurrency=1),
            cwd=ROOT,
            env=worker_env(broker, LOG_FORMAT="json"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        token = current_request_id.set("req-789")
        try:
            with publishing_to(broker):
                push_ticket_id = 987654  # no such ticket: the task ends at once
                from tickets.tasks import push_ticket

                push_ticket.delay(push_ticket_id)
        finally:
            current_request_id.reset(token)
        deadline = time.monotonic() + 90
        while True:
            lines = [json.loads(t) for t in log_path.read_text().splitlines() if t.startswith("{")]
            done = [line for line in lines if "succeeded" in line["message"]]
            if done:
                break
            assert worker.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.3)
    finally:
        worker.terminate()
        worker.wait(30)
    assert done[0]["request_id"] == "req-789"
    assert "push_ticket" in done[0]["message"]
    # no plain-format log line: every log line is JSON
    assert not re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ", log_path.read_text(), re.M)
