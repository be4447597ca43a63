"""What people see is true and addressed to whoever can fix it, walked in a real browser: a
status Keliweb cannot take is "kept here only" (never a green Synced) and a pull shows what
Keliweb still has; a refused credential tells the agent to ask a provider admin, and the
provider admin finds the account in a banner. A real worker syncs with the sandbox."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser, Page, expect

from tests.e2e.test_admin_bulk import (
    admin_sign_in,
    job_from,
    open_job,
    open_tickets,
    results,
    run_action,
)
from tests.e2e.test_staff_ui import SYNC_TIMEOUT_MS, fill_ticket, open_create_form, sign_in
from tests.helpers import wait_for
from tickets import pull, services
from tickets.models import Status, SyncState, Ticket

KELIWEB_REASON = "Keliweb cannot update a ticket after it is created — add a reply instead."


@pytest.fixture
def provider_admin(transactional_db) -> User:
    return User.objects.create_superuser("root", "root@example.com", "root-pass")


def agent_page(browser: Browser, base_url: str) -> Page:
    """The agent's own browser window (the provider admin uses `page`)."""
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    sign_in(page, base_url)
    return page


@pytest.mark.worker
def test_a_bulk_resolved_on_a_keliweb_ticket_is_kept_here_only_and_the_pull_shows_keliwebs_status(
    page: Page, browser: Browser, live_server, worker, account_factory, provider_admin, agent_user
):
    keliweb = account_factory("keliweb")
    ticket = services.create_ticket(
        account=keliweb, title="Mail bounces", description="Since noon", requester_email="ann@acme.test"
    )
    wait_for(
        lambda: Ticket.objects.get(pk=ticket.pk).sync_state == SyncState.SYNCED,
        message="the create never reached Keliweb",
    )

    # The provider admin resolves the account's tickets as a bulk job.
    admin_sign_in(page, live_server.url)
    open_tickets(page)
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    page.locator("#action-toggle").check()
    run_action(page, "Change status (choose it on the right)", Status="Resolved")
    job = job_from(page)
    open_job(page, job)
    expect(page.locator("#job-counts")).to_have_text(
        "Done — 1 of 1 processed: 0 succeeded, 1 kept here only (the provider cannot take the change), "
        "0 failed, 0 skipped."
    )
    assert results(page) == [["Kept here only", f"Changed here only: {KELIWEB_REASON}", "1"]]

    # The agent sees it plainly: kept here, not synced.
    agent = agent_page(browser, live_server.url)
    agent.goto(f"{live_server.url}/tickets/{ticket.pk}/")
    badge = agent.locator("#sync-status [data-sync-id]")
    expect(badge).to_have_text("Kept here only")
    expect(agent.locator("#sync-sentence")).to_have_text(f"Kept here only — {KELIWEB_REASON}")
    expect(agent.locator("#ticket-status")).to_have_text("Resolved")
    expect(agent.get_by_text("In step with the provider")).to_have_count(0)
    agent.get_by_role("link", name="Tickets").first.click()
    agent.locator("#id_sync_state").select_option(SyncState.LOCAL_ONLY)
    agent.get_by_role("button", name="Filter", exact=True).click()
    expect(agent.locator("tbody .badge")).to_have_text(["Kept here only"])

    # The periodic pull reads Keliweb's "Open": the console keeps "Resolved" and says what
    # Keliweb has, instead of reverting it.
    assert pull.pull_account(account=keliweb).fetched == 1
    agent.goto(f"{live_server.url}/tickets/{ticket.pk}/")
    expect(agent.locator("#ticket-status")).to_have_text("Resolved")
    expect(agent.locator("#sync-difference")).to_have_text(
        "Keliweb still has it Open; the console has Resolved."
    )
    expect(badge).to_have_text("Kept here only")
    assert Ticket.objects.get(pk=ticket.pk).status == Status.RESOLVED

    # The dashboard counts it apart from the synced ones.
    page.goto(f"{live_server.url}/admin/")
    page.get_by_role("link", name="Sync dashboard").click()
    row = page.locator("tbody tr", has_text=keliweb.name)
    expect(row.locator("td").nth(6)).to_have_text("1")


@pytest.mark.worker
def test_a_refused_credential_tells_the_agent_to_ask_a_provider_admin_who_sees_a_banner(
    page: Page,
    browser: Browser,
    live_server,
    worker,
    account_factory,
    provider_admin,
    agent_user,
    screenshot_dir,
):
    kapture = account_factory("kapture", name="Kapture EU", credentials={"token": "wrong-token-value"})

    agent = agent_page(browser, live_server.url)
    open_create_form(agent, kapture)
    fill_ticket(agent, title="Printer on fire")
    agent.get_by_role("button", name="Create ticket").click()
    # The page follows the sync by itself and reloads when it settles.
    expect(agent.locator("#sync-status [data-sync-id]")).to_have_text("Failed", timeout=SYNC_TIMEOUT_MS)
    problem = agent.locator("#account-problem")
    expect(problem).to_contain_text("A provider admin is needed:")
    expect(problem).to_contain_text("Kapture EU's credentials were refused by Kapture CX")
    expect(problem).to_contain_text("A provider admin must update them in the account settings.")
    expect(agent.locator("#sync-sentence")).to_have_text(
        "Not sent: the account Kapture EU has a problem that only a provider admin can fix. "
        "Ask one; the change is kept here."
    )
    expect(agent.get_by_text("change what it names")).to_have_count(0)
    expect(agent.locator("body")).not_to_contain_text("wrong-token-value")

    # The provider admin meets the problem on the admin's first page and the dashboard.
    admin_sign_in(page, live_server.url)
    banner = page.locator("#account-problems")
    expect(banner).to_contain_text("1 provider account needs a provider admin.")
    expect(banner).to_contain_text("Kapture EU")
    expect(banner).to_contain_text("credentials were refused")
    page.screenshot(path=screenshot_dir / "account-problem.png", full_page=True)
    page.get_by_role("link", name="Sync dashboard").click()
    expect(page.locator("#account-problems")).to_contain_text("Kapture EU")
    page.locator("#account-problems").get_by_role("link", name="Kapture EU").click()
    expect(page.locator("#id_base_url")).to_have_value(kapture.base_url)
