"""In a real browser: a reply written on Keliweb's side shows on the ticket page, and a create
whose outcome is unknown gets a page that says what to look for and checks the id linked."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.test_staff_ui import SYNC_TIMEOUT_MS, sign_in
from tests.helpers import wait_for
from tickets import pull, services
from tickets.models import SyncState, Ticket

SEARCH = "https://acme.kapturecrm.example/search?q={query}"


def settled(ticket: Ticket, state: str) -> Ticket:
    def reached() -> bool:
        ticket.refresh_from_db()
        return ticket.sync_state == state

    wait_for(reached, message=f"{ticket} stayed {ticket.sync_state}")
    return ticket


def test_a_reply_written_in_keliweb_shows_in_the_conversation(
    page: Page, live_server, worker, sandbox, account_factory, agent_user, screenshot_dir
):
    account = account_factory("keliweb")
    ticket = settled(
        services.create_ticket(
            account=account,
            title="Mail bounces",
            description="Since 9:00",
            requester_name="Anna Verdi",
            requester_email="anna@acme.test",
        ),
        SyncState.SYNCED,
    )
    sign_in(page, live_server.url)
    page.goto(f"{live_server.url}/tickets/{ticket.pk}/")
    page.get_by_label("Reply").fill("Could you send the bounce message?")
    page.get_by_role("button", name="Send reply").click()
    ours = page.locator("article").filter(has_text="Could you send the bounce message?")
    expect(ours.locator(".badge")).to_have_text("Synced", timeout=SYNC_TIMEOUT_MS)

    # In Keliweb, a support agent answers; the next pull (beat's, here run at once) reads it.
    sandbox.control(
        "keliweb/staff-reply",
        {
            "ticketid": ticket.remote_id,
            "admin": "Giulia Bianchi",
            "message": "We moved your mailbox. Try again now.",
        },
    )
    pull.pull_account(account=account)
    pull.pull_account(account=account)
    page.reload()
    theirs = page.locator("article.reply-inbound")
    expect(theirs).to_have_count(1)
    expect(theirs).to_have_attribute("aria-label", "Reply from Keliweb")
    expect(theirs).to_contain_text("Keliweb · Giulia Bianchi (support agent)")
    expect(theirs).to_contain_text("We moved your mailbox. Try again now.")
    expect(page.locator("article").filter(has_text="Could you send the bounce message?")).to_have_count(1)
    expect(page.locator("#ticket-status")).to_have_text("Pending")  # Keliweb's "Answered"
    page.screenshot(path=screenshot_dir / "conversation.png", full_page=True)
    [remote] = sandbox.state("keliweb")["tickets"]
    assert len(remote["replies"]) == 3  # the opening message, ours, theirs: nothing sent back


def test_an_unknown_create_says_what_to_look_for_and_the_linked_id_is_checked(
    page: Page, live_server, worker, sandbox, account_factory, agent_user, screenshot_dir
):
    account = account_factory("kapture", settings={"web_search_url": SEARCH})
    sandbox.faults(script=["lost"])  # Kapture creates the ticket; the answer never arrives
    ticket = settled(
        services.create_ticket(account=account, title="Printer on fire", requester_email="tim@acme.test"),
        SyncState.NEEDS_ATTENTION,
    )
    sign_in(page, live_server.url)
    page.goto(f"{live_server.url}/tickets/{ticket.pk}/")
    lookup = page.locator("#lookup")
    expect(lookup).to_contain_text("Find it in Kapture CX")
    expect(page.locator("#lookup-marker")).to_have_text(f"[Ticket Console {ticket.reference}]")
    expect(page.locator("#lookup-title")).to_have_text("Printer on fire")
    expect(page.locator("#lookup-sent")).to_contain_text(ticket.created_at.strftime("%Y-%m-%d"))
    search = lookup.get_by_role("link", name="Search Kapture CX for the marker")
    expect(search).to_have_attribute(
        "href", SEARCH.replace("{query}", f"%5BTicket%20Console%20{ticket.reference}%5D")
    )
    page.screenshot(path=screenshot_dir / "unknown-create.png", full_page=True)

    remote_id = page.get_by_label("Remote id")
    remote_id.fill("999999")
    page.get_by_role("button", name="Link remote id").click()
    expect(remote_id).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#sync-status")).to_contain_text("Needs attention")
    expect(page.get_by_text("Kapture CX has no ticket 999999.")).to_be_visible()

    [remote] = sandbox.state("kapture")["tickets"]
    page.get_by_label("Remote id").fill(remote["ticket_id"])
    page.get_by_role("button", name="Link remote id").click()
    expect(page.get_by_role("status").filter(has_text="found in Kapture CX")).to_be_visible()
    expect(page.locator("#sync-status [data-sync-id]")).to_have_text("Synced")
    expect(page.locator("#lookup")).to_have_count(0)
    assert len(sandbox.state("kapture")["tickets"]) == 1
