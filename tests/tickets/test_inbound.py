"""Knight's callbacks: a per-account secret URL, every body stored once, status applied;
the secret rotates with a grace period and is never stored where people or records see it."""

import json
from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone

from providers.models import ProviderAccount
from tests.helpers import callback_path, refreshed, wait_for
from tickets import services
from tickets.models import InboundEvent, SyncAttempt, SyncState, Ticket


@pytest.fixture
def knight(account_factory):
    account = account_factory("knight")
    account.settings = {**account.settings, "callback_base_url": "https://console.example.com/"}
    account.save()
    secret = services.ensure_callback_secret(account=account)
    account.refresh_from_db()
    return account, secret


def post(client, account, secret, payload, **extra):
    body = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
    return client.post(callback_path(account, secret), body, content_type="application/json", **extra)


@pytest.mark.worker
def test_knight_is_given_the_callback_and_its_status_report_is_applied_once(worker, sandbox, knight, client):
    account, secret = knight
    assert services.ensure_callback_secret(account=account) == secret  # created once
    ticket = services.create_ticket(account=account, title="Disk full", description="db01")
    wait_for(lambda: refreshed(ticket).sync_state == SyncState.SYNCED, message="the create did not sync")
    [remote] = sandbox.state("knight")["tickets"]
    assert remote["callbackAddress"] == f"https://console.example.com/inbound/knight/{account.pk}/{secret}/"
    # Built when sent: neither the account's settings nor the ticket hold it.
    assert secret not in json.dumps(refreshed(ticket).extra) and "callback_address" not in ticket.extra
    assert secret not in json.dumps(ProviderAccount.objects.get(pk=account.pk).settings)
    # The records show where it went, not the secret (the signed token carries it too).
    recorded = SyncAttempt.objects.get(ticket=ticket, operation="create")
    assert f"/inbound/knight/{account.pk}/[redacted]/" in recorded.request_body
    every_column = json.dumps(list(SyncAttempt.objects.filter(account=account).values()), default=str)
    assert recorded.request_headers["X-Chatops-Source-Api-Token"] == "[redacted]"
    assert secret not in every_column

    payload = {"ticketId": ticket.reference, "status": "INPROGRESS", "resolver": "ops"}
    first, again = post(client, account, secret, payload), post(client, account, secret, payload)
    assert (first.status_code, first.json()["applied"], first.json()["duplicate"]) == (200, True, False)
    assert (again.status_code, again.json()["duplicate"]) == (200, True)
    [event] = InboundEvent.objects.all()
    assert (event.ticket_id, event.applied, event.payload) == (ticket.pk, True, payload)
    ticket = refreshed(ticket)
    assert (ticket.status, ticket.remote_status, ticket.revision) == ("in_progress", "INPROGRESS", 1)
    assert list(ticket.inbound_events.all()) == [event]  # part of the ticket's history
    assert not SyncAttempt.objects.filter(operation="update").exists()  # nothing echoed back


@pytest.mark.django_db
def test_a_wrong_secret_a_get_and_an_oversized_body_are_refused_and_not_stored(knight, client, settings):
    account, secret = knight
    assert post(client, account, "not-the-secret", {"ticketId": "TC-1"}).status_code == 404
    assert post(client, account.__class__(pk=account.pk + 999), secret, {}).status_code == 404
    assert client.get(callback_path(account, secret)).status_code == 405
    settings.INBOUND_MAX_BYTES = 1024
    assert post(client, account, secret, {"blob": "x" * 2000}).status_code == 413
    assert not InboundEvent.objects.exists()


@pytest.mark.django_db
def test_after_a_rotation_the_old_secret_works_for_the_grace_period_then_is_refused(
    knight, client, monkeypatch
):
    account, old = knight
    rotated_at = timezone.now()
    until = services.rotate_callback_secret(account=account)  # INBOUND_SECRET_GRACE: a day
    new = services.ensure_callback_secret(account=account)
    assert new != old and abs(until - rotated_at - timedelta(hours=24)) < timedelta(minutes=1)
    assert post(client, account, old, {"ticketId": "TC-1"}).status_code == 200
    assert post(client, account, new, {"ticketId": "TC-2"}).status_code == 200

    monkeypatch.setattr(timezone, "now", lambda: until + timedelta(seconds=1))
    assert post(client, account, old, {"ticketId": "TC-3"}).status_code == 404
    assert post(client, account, new, {"ticketId": "TC-4"}).status_code == 200
    assert sorted(e.payload["ticketId"] for e in InboundEvent.objects.all()) == ["TC-1", "TC-2", "TC-4"]


@pytest.mark.django_db
def test_a_second_rotation_ends_the_oldest_secret_at_once(knight, client, settings):
    account, first = knight
    settings.INBOUND_SECRET_GRACE = 3600
    services.rotate_callback_secret(account=account)
    second = services.ensure_callback_secret(account=account)
    services.rotate_callback_secret(account=account)
    assert post(client, account, first, {}).status_code == 404
    assert post(client, account, second, {}).status_code == 200


@pytest.mark.django_db
def test_the_secret_is_stored_encrypted_and_an_agents_own_callback_address_is_kept(knight, sandbox):
    account, secret = knight
    stored = ProviderAccount.objects.filter(pk=account.pk).values_list("callback_secrets", flat=True).get()
    assert secret not in str(stored) and "encrypted" in repr(stored)  # ciphertext, sealed
    provider = ProviderAccount.objects.get(pk=account.pk).get_provider()
    own = Ticket(
        account=account,
        reference="TC-000001",
        title="x",
        extra={"callback_address": "https://hooks.example/knight"},
    )
    console = Ticket(account=account, reference="TC-000002", title="y")
    assert provider.build_create(own).json["callbackAddress"] == "https://hooks.example/knight"
    assert provider.build_create(console).json["callbackAddress"].endswith(f"/{secret}/")


@pytest.mark.django_db
def test_only_providers_that_call_back_get_a_callback_secret(account_factory):
    with pytest.raises(services.TicketActionError, match="Kapture CX does not call back"):
        services.ensure_callback_secret(account=account_factory("kapture"))


@pytest.mark.django_db
def test_a_payload_that_names_no_known_ticket_is_stored_but_not_applied(knight, client):
    account, secret = knight
    assert post(client, account, secret, {"ticketId": "TC-999999", "status": "CLOSE"}).status_code == 200
    assert post(client, account, secret, b"<xml>not json</xml>").status_code == 200
    events = {e.payload.get("ticketId", "raw"): e for e in InboundEvent.objects.all()}
    assert not any(e.applied for e in events.values())
    assert "No ticket TC-999999" in events["TC-999999"].note
    assert events["raw"].payload == {"raw": "<xml>not json</xml>"} and "Not JSON" in events["raw"].note


@pytest.mark.django_db
def test_a_callback_that_contradicts_an_unsent_console_change_needs_attention(knight, client):
    account, secret = knight
    ticket = Ticket.objects.create(
        account=account,
        title="Disk full",
        revision=2,
        synced_revision=1,
        status="on_hold",
        remote_id="x",
        sync_state=SyncState.PENDING,
        next_attempt_at="2099-01-01T00:00:00Z",
        synced_fields={"status": "new", "remote_status": "NEW"},
    )
    Ticket.objects.filter(pk=ticket.pk).update(remote_id=F("reference"))
    response = post(client, account, secret, {"ticketId": ticket.reference, "status": "RESOLVE"})
    assert response.status_code == 200 and response.json()["applied"] is False
    ticket = refreshed(ticket)
    assert ticket.sync_state == SyncState.NEEDS_ATTENTION and ticket.status == "on_hold"
    assert "the console has On hold, ChatOps Knight now has Resolved (RESOLVE)." in ticket.last_error
