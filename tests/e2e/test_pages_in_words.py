"""Pages say things in words, walked in a real browser: a remote status by the account map's
label on the agent's ticket page and in the admin; the admin ticket page with tags as text, no
raw JSON and no Delete (tickets are cancelled, never deleted); the provider-account page with
no template comment showing."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from tests.e2e.test_admin_bulk import admin_sign_in
from tests.e2e.test_staff_ui import sign_in
from tickets.models import SyncState, Ticket


@pytest.fixture
def provider_admin(transactional_db) -> User:
    return User.objects.create_superuser("root", "root@example.com", "root-pass")


@pytest.fixture
def kapture_ticket(account_factory) -> Ticket:
    """A Kapture ticket read back as "OP", which the account's map reads as Open."""
    return Ticket.objects.create(
        account=account_factory("kapture"),
        title="Printer on fire",
        requester_email="ann@acme.test",
        tags=["vip", "printer"],
        status="open",
        remote_id="K-1",
        remote_status="OP",
        sync_state=SyncState.SYNCED,
        revision=1,
        synced_revision=1,
    )


def test_the_agent_reads_the_remote_status_by_the_maps_label(
    page: Page, live_server, agent_user, kapture_ticket
):
    sign_in(page, live_server.url)
    page.goto(f"{live_server.url}/tickets/{kapture_ticket.pk}/")
    expect(page.get_by_text("Open (OP)").first).to_be_visible()


def test_the_admin_ticket_page_reads_in_words_and_offers_no_delete(
    page: Page, live_server, provider_admin, kapture_ticket
):
    admin_sign_in(page, live_server.url)
    page.goto(f"{live_server.url}/admin/tickets/ticket/{kapture_ticket.pk}/change/")
    expect(page.get_by_label("Tags")).to_have_value("vip, printer")
    expect(page.get_by_text("Open (OP)").first).to_be_visible()
    body = page.locator("body").inner_text()
    assert "null" not in body.split() and "[]" not in body
    expect(page.get_by_role("link", name=re.compile("^Delete$"))).to_have_count(0)


def test_the_provider_account_page_shows_no_template_comment(
    page: Page, live_server, provider_admin, kapture_ticket
):
    admin_sign_in(page, live_server.url)
    page.goto(f"{live_server.url}/admin/providers/provideraccount/{kapture_ticket.account_id}/change/")
    expect(page.get_by_role("heading", name=re.compile("Change provider account"))).to_be_visible()
    assert "{#" not in page.locator("body").inner_text()
