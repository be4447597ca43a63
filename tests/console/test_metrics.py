"""/metrics: off without a token, refused with a wrong one, and the queue as it is in the database."""

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from providers.models import ProviderAccount
from tickets.models import BulkJob, SyncAttempt, SyncState, Ticket

TOKEN = "scrape-token-5f1c"
CREDENTIAL = "kapture-api-key-77aa"

pytestmark = pytest.mark.django_db


@pytest.fixture
def metrics_on(settings):
    settings.METRICS_TOKEN = TOKEN


def scrape(client) -> tuple[str, dict[tuple[str, frozenset], float]]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return text, samples


def make_account(name: str, kind: str, **fields) -> ProviderAccount:
    account = ProviderAccount(name=name, kind=kind, base_url=f"https://{name}.example.com", **fields)
    account.set_credentials({"token": CREDENTIAL})
    account.save()
    return account


def make_tickets(account, state: str, count: int, *, age: timedelta = timedelta(0)) -> None:
    for n in range(count):
        ticket = Ticket.objects.create(account=account, title=f"{state} {n}", sync_state=state)
        moment = timezone.now() - age
        Ticket.objects.filter(pk=ticket.pk).update(created_at=moment, updated_at=moment)


def test_metrics_are_off_until_a_token_is_set(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x"])
def test_metrics_refuse_a_missing_or_wrong_token(client, metrics_on, header):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    response = client.get("/metrics", **extra)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"ticket_console" not in response.content


def test_metrics_show_queues_ages_breakers_calls_and_bulk_jobs(client, metrics_on):
    eu = make_account("Kapture EU", "kapture")
    shop = make_account(
        "Keliweb shop", "keliweb", consecutive_failures=5, paused_until=timezone.now() + timedelta(seconds=60)
    )
    make_tickets(eu, SyncState.PENDING, 3, age=timedelta(minutes=10))
    make_tickets(eu, SyncState.PENDING, 1)
    make_tickets(eu, SyncState.NEEDS_ATTENTION, 1)
    make_tickets(eu, SyncState.SYNCED, 2)
    make_tickets(shop, SyncState.FAILED, 2)
    ticket = Ticket.objects.filter(account=eu).first()
    now = timezone.now()
    for outcome, duration_ms in [("success", 80), ("success", 300), ("success", 1200), ("retry", 15000)]:
        SyncAttempt.objects.create(
            ticket=ticket,
            account=eu,
            operation="create",
            outcome=outcome,
            started_at=now - timedelta(seconds=30),
            duration_ms=duration_ms,
        )
    # outside the window: not counted
    SyncAttempt.objects.create(
        ticket=ticket,
        account=eu,
        operation="update",
        outcome="failed",
        started_at=now - timedelta(hours=2),
        duration_ms=10,
    )
    job = BulkJob.objects.create(action="retry_sync", state=BulkJob.State.RUNNING, total=40, processed=12)
    BulkJob.objects.create(action="export_csv", state=BulkJob.State.DONE, total=5, processed=5)

    text, samples = scrape(client)

    def value(name: str, **labels) -> float:
        return samples[(name, frozenset(labels.items()))]

    queue = "ticket_console_sync_queue_tickets"
    assert value(queue, account="Kapture EU", provider="kapture", sync_state="pending") == 4
    assert value(queue, account="Kapture EU", provider="kapture", sync_state="needs_attention") == 1
    assert value(queue, account="Kapture EU", provider="kapture", sync_state="sending") == 0
    assert value(queue, account="Keliweb shop", provider="keliweb", sync_state="failed") == 2
    age = value("ticket_console_oldest_waiting_ticket_age_seconds", account="Kapture EU", provider="kapture")
    assert 590 <= age <= 700
    assert (
        value("ticket_console_oldest_waiting_ticket_age_seconds", account="Keliweb shop", provider="keliweb")
        == 0
    )

    shop_labels = {"account": "Keliweb shop", "provider": "keliweb"}
    assert value("ticket_console_account_paused", **shop_labels) == 1
    assert value("ticket_console_account_paused", account="Kapture EU", provider="kapture") == 0
    assert value("ticket_console_account_consecutive_failures", **shop_labels) == 5
    assert value("ticket_console_account_breaker_threshold", **shop_labels) == 5  # SYNC_BREAKER_THRESHOLD

    calls = "ticket_console_sync_calls_recent"
    assert value(calls, provider="kapture", operation="create", outcome="success") == 3
    assert value(calls, provider="kapture", operation="create", outcome="retry") == 1
    assert (
        calls,
        frozenset({"provider": "kapture", "operation": "update", "outcome": "failed"}.items()),
    ) not in samples
    latency = "ticket_console_push_duration_seconds_bucket"
    assert value(latency, provider="kapture", le="0.1") == 1
    assert value(latency, provider="kapture", le="0.5") == 2
    assert value(latency, provider="kapture", le="2.5") == 3
    assert value(latency, provider="kapture", le="10.0") == 3
    assert value(latency, provider="kapture", le="+Inf") == 4

    assert value("ticket_console_bulk_job_tickets", job=str(job.pk), action="retry_sync") == 40
    assert value("ticket_console_bulk_job_processed_tickets", job=str(job.pk), action="retry_sync") == 12
    assert "export_csv" not in text  # finished jobs are not progress

    # labels are names: no credential, no URL
    assert CREDENTIAL not in text
    assert "example.com" not in text


def test_a_scrape_costs_a_fixed_number_of_queries(client, metrics_on, django_assert_max_num_queries):
    for n in range(3):
        account = make_account(f"Account {n}", "kapture")
        make_tickets(account, SyncState.PENDING, 5)
    with django_assert_max_num_queries(6):
        scrape(client)
