"""Tickets in the admin: created and edited through the services layer."""

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from tickets.models import SyncState, Ticket


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


def ticket_form(account, **overrides) -> dict:
    data = {
        "account": account.pk, "title": "Printer on fire", "description": "3rd floor",
        "requester_email": "tim@acme.com", "requester_name": "Tim", "priority": "high",
        "impact": "", "status": "new", "due_at_0": "", "due_at_1": "", "tags": "[]",
        "extra": "{}",
        "attempts_log-TOTAL_FORMS": "0", "attempts_log-INITIAL_FORMS": "0",
        "attempts_log-MIN_NUM_FORMS": "0", "attempts_log-MAX_NUM_FORMS": "0",
    }
    return {**data, **overrides}


@pytest.mark.django_db
def test_adding_a_ticket_in_the_admin_queues_it_for_sync(admin_client, account_factory):
    account = account_factory("kapture")
    response = admin_client.post(reverse("admin:tickets_ticket_add"), ticket_form(account))
    assert response.status_code == 302, response.content.decode()[:3000]
    ticket = Ticket.objects.get()
    assert ticket.reference == f"TC-{ticket.pk:06d}"
    assert (ticket.sync_state, ticket.revision) == (SyncState.PENDING, 1)
    assert ticket.created_by.username == "root"
    listing = admin_client.get(reverse("admin:tickets_ticket_changelist")).content.decode()
    assert ticket.reference in listing and "Pending" in listing


@pytest.mark.django_db
def test_bad_provider_fields_are_refused_before_saving(admin_client, account_factory):
    account = account_factory("kapture")
    form = ticket_form(account, extra='{"callback_time": "tomorrow"}')
    response = admin_client.post(reverse("admin:tickets_ticket_add"), form)
    assert response.status_code == 200
    assert "yyyy-MM-dd hh:mm:ss" in response.content.decode()
    assert not Ticket.objects.exists()


@pytest.mark.django_db
def test_tickets_cannot_be_bulk_deleted(admin_client, account_factory):
    page = admin_client.get(reverse("admin:tickets_ticket_changelist")).content.decode()
    assert "delete_selected" not in page


@pytest.mark.django_db
def test_an_edit_with_bad_provider_fields_is_refused_before_anything_is_sent(
    admin_client, account_factory, sandbox
):
    from tickets import services

    account = account_factory("particlespace")
    ticket = services.create_ticket(account=account, title="Leaking faucet", description="1A")
    url = reverse("admin:tickets_ticket_change", args=[ticket.pk])
    form = ticket_form(account, status="open", extra='{"notify": true, "type": "email"}')
    form.pop("account")  # read-only on edits
    response = admin_client.post(url, form)
    assert response.status_code == 200
    assert "Particle Space needs contacts to notify." in response.content.decode()
    ticket.refresh_from_db()
    assert (ticket.status, ticket.revision) == ("new", 1)
    assert sandbox.control("calls") == {}
