"""/healthz and /readyz: what a load balancer or an orchestrator sees."""

import logging
import socket
import time

import pytest

from tests.faults_harness import PrivateRedis, publishing_to


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def private_redis():
    redis = PrivateRedis()
    redis.start()
    yield redis
    redis.stop()


def test_healthz_answers_ok_without_touching_the_database(client):
    # No django_db mark: a database query here would fail the test.
    response = client.get("/healthz", HTTP_HOST="10.0.3.7:8000")  # a probe by IP, not an allowed host
    assert response.status_code == 200
    assert response.content == b"ok"


def test_probes_are_answered_over_plain_http_in_production_mode(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["console.example.com"]
    assert client.get("/healthz", HTTP_HOST="10.0.3.7").status_code == 200
    assert client.get("/admin/", HTTP_HOST="console.example.com").status_code == 301  # the rest redirects


@pytest.mark.redis
@pytest.mark.django_db
def test_readyz_is_ready_when_the_database_and_the_broker_answer(client, private_redis):
    with publishing_to(private_redis.url):
        response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"ready": True, "checks": {"database": "ok", "broker": "ok"}}


@pytest.mark.django_db
def test_readyz_names_an_unreachable_broker_and_not_its_url(client, caplog):
    url = f"redis://:broker-password-9@127.0.0.1:{free_port()}/0"  # nothing listens there
    started = time.monotonic()
    with publishing_to(url):
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("unreachable (")
    assert b"broker-password-9" not in response.content
    assert b"127.0.0.1" not in response.content
    assert time.monotonic() - started < 5
    # An operator's log shows one warning naming the broker, not an ERROR per probe.
    assert [r.levelname for r in caplog.records if r.levelno >= logging.WARNING] == ["WARNING"]
    assert "broker" in caplog.records[-1].getMessage()


@pytest.mark.django_db
def test_readyz_gives_up_on_a_broker_that_never_answers(client, settings):
    settings.READINESS_TIMEOUT = 0.5
    # A socket that listens but never accepts: the connection opens, the PING is never answered.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        started = time.monotonic()
        with publishing_to(f"redis://127.0.0.1:{silent.getsockname()[1]}/0"):
            response = client.get("/readyz")
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "broker": "no answer within 0.5 s"}
    assert elapsed < 3
