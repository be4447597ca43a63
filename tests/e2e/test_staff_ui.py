"""An agent works tickets in a real browser; a real worker syncs them with the sandbox."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tickets.models import Status, SyncState, Ticket

SYNC_TIMEOUT_MS = 30_000
KINDS = ("knight", "motadata", "keliweb", "kapture", "particlespace")

# What an agent types into each provider's own fields (input id -> value; selects by value).
PROVIDER_INPUTS: dict[str, dict[str, str]] = {
    "knight": {"#id_knight-ticket_priority": "2", "#id_knight-assignment_groups": "network, l2"},
    "motadata": {"#id_motadata-urgency": "HIGH", "#id_motadata-cc_emails": "lead@acme.test"},
    "keliweb": {"#id_keliweb-markdown": "check"},
    "kapture": {"#id_kapture-extra_keys": '{"order_id": "A-17"}', "#id_kapture-queue": "L1"},
    "particlespace": {
        "#id_particlespace-notify": "true",
        "#id_particlespace-type": "email",
        "#id_particlespace-contacts": "ops@acme.test",
    },
}


def sign_in(page: Page, base_url: str, username: str = "agent", password: str = "agent-pass") -> None:
    page.goto(f"{base_url}/")
    expect(page.get_by_role("heading", name="Sign in", exact=True)).to_be_visible()
    page.locator("#id_username").fill(username)
    page.locator("#id_password").fill(password)
    page.locator("#id_password").press("Enter")  # keyboard submits the form
    expect(page.get_by_role("heading", name="Tickets", exact=True)).to_be_visible()


def fill(page: Page, inputs: dict[str, str]) -> None:
    for selector, value in inputs.items():
        field = page.locator(selector)
        tag = field.evaluate("element => element.tagName.toLowerCase() + ':' + (element.type || '')")
        if tag.startswith("select"):
            field.select_option(value)
        elif tag == "input:checkbox":
            field.check()
        else:
            field.fill(value)


def open_create_form(page: Page, account) -> None:
    page.get_by_role("link", name="New ticket").first.click()
    expect(page.get_by_role("heading", name="New ticket", exact=True)).to_be_visible()
    page.locator("#id_account").select_option(str(account.pk))
    # The page re-renders with that account's own fields.
    expect(page.locator(f'#provider-fields[data-kind="{account.kind}"]')).to_be_visible()


def fill_ticket(page: Page, *, title: str, requester_email: str = "ann@acme.test") -> None:
    page.locator("#id_title").fill(title)
    page.locator("#id_description").fill("Nobody on the 3rd floor can connect.")
    page.locator("#id_requester_email").fill(requester_email)
    page.locator("#id_requester_name").fill("Ann Agent")
    page.locator("#id_priority").select_option("high")


def wait_until_synced(page: Page) -> None:
    # No reload here: the page polls and refreshes itself when the sync settles.
    expect(page.locator("#sync-status [data-sync-id]")).to_have_text("Synced", timeout=SYNC_TIMEOUT_MS)


def test_an_agent_creates_a_ticket_in_every_provider_and_watches_it_sync(
    page: Page, live_server, worker, account_factory, agent_user, screenshot_dir
):
    accounts = {kind: account_factory(kind) for kind in KINDS}
    sign_in(page, live_server.url)
    expect(page.get_by_role("link", name="Create your first ticket")).to_be_visible()

    for kind, account in accounts.items():
        open_create_form(page, account)
        fill_ticket(page, title=f"VPN down ({kind})")
        fill(page, PROVIDER_INPUTS[kind])
        if kind == "particlespace":
            page.screenshot(path=screenshot_dir / "create.png", full_page=True)
        page.get_by_role("button", name="Create ticket").click()
        expect(page.get_by_role("status").filter(has_text="saved")).to_be_visible()
        wait_until_synced(page)
        expect(page.locator(".timeline")).to_contain_text(f"Created in {account.provider_class.label}")
        ticket = Ticket.objects.get(account=account)
        assert ticket.remote_id and ticket.created_by == agent_user
        expect(page.locator("[data-remote-for]")).to_contain_text(ticket.remote_number or ticket.remote_id)

    assert Ticket.objects.get(account=accounts["kapture"]).extra["extra_keys"] == {"order_id": "A-17"}
    assert Ticket.objects.get(account=accounts["particlespace"]).extra["contacts"] == "ops@acme.test"

    # Change a status where the provider takes updates; Keliweb says why it cannot.
    for kind in ("knight", "motadata", "kapture", "particlespace"):
        ticket = Ticket.objects.get(account=accounts[kind])
        page.goto(f"{live_server.url}/tickets/{ticket.pk}/")
        page.locator("#id_status").select_option("in_progress")
        page.get_by_role("button", name="Change status").click()
        expect(page.get_by_role("status").filter(has_text="is now In progress")).to_be_visible()
        wait_until_synced(page)
        label = accounts[kind].provider_class.label
        expect(page.locator(".timeline")).to_contain_text(f"Changes sent to {label}")
        ticket.refresh_from_db()
        assert (ticket.status, ticket.sync_state) == (Status.IN_PROGRESS, SyncState.SYNCED)
    keliweb = Ticket.objects.get(account=accounts["keliweb"])
    page.goto(f"{live_server.url}/tickets/{keliweb.pk}/")
    expect(page.locator(".unavailable-actions")).to_contain_text("Keliweb cannot update a ticket")
    expect(page.locator("#id_status")).to_have_count(0)

    # Reply where the provider takes replies; the reply's badge turns Synced by itself.
    for kind in ("keliweb", "kapture"):
        ticket = Ticket.objects.get(account=accounts[kind])
        page.goto(f"{live_server.url}/tickets/{ticket.pk}/")
        page.get_by_label("Reply").fill(f"We are on it ({kind}).")
        page.get_by_role("button", name="Send reply").click()
        reply = page.locator("article").filter(has_text=f"We are on it ({kind}).")
        expect(reply.locator(".badge")).to_have_text("Synced", timeout=SYNC_TIMEOUT_MS)
        if kind == "kapture":
            page.screenshot(path=screenshot_dir / "detail.png", full_page=True)
    knight = Ticket.objects.get(account=accounts["knight"])
    page.goto(f"{live_server.url}/tickets/{knight.pk}/")
    expect(page.locator(".unavailable-actions")).to_contain_text("Knight takes no comments or replies.")

    page.goto(f"{live_server.url}/")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(5)
    expect(page.locator("tbody .badge").filter(has_text="Synced")).to_have_count(5)
    page.screenshot(path=screenshot_dir / "list.png", full_page=True)


def test_bad_input_shows_the_error_on_the_field_and_keeps_the_rest(
    page: Page, live_server, account_factory, agent_user, screenshot_dir
):
    particlespace = account_factory("particlespace")
    motadata = account_factory("motadata")
    page.goto(f"{live_server.url}/")
    page.locator("#id_username").fill("agent")
    page.locator("#id_password").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("correct username and password")
    expect(page.locator("#id_username")).to_have_value("agent")
    page.screenshot(path=screenshot_dir / "sign-in.png")
    sign_in(page, live_server.url)

    open_create_form(page, particlespace)
    fill_ticket(page, title="Notify the on-call team")
    fill(page, {"#id_particlespace-notify": "true", "#id_particlespace-type": "email"})
    page.get_by_role("button", name="Create ticket").click()
    contacts = page.locator("#id_particlespace-contacts")
    expect(contacts).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#provider-fields")).to_contain_text("Particle Space needs contacts to notify.")
    expect(page.locator("#id_title")).to_have_value("Notify the on-call team")
    expect(page.locator("#id_description")).to_have_value("Nobody on the 3rd floor can connect.")
    expect(page.locator("#id_particlespace-type")).to_have_value("email")
    page.screenshot(path=screenshot_dir / "error.png", full_page=True)
    contacts.fill("oncall@acme.test")  # correcting the one field is enough
    page.get_by_role("button", name="Create ticket").click()
    expect(page.get_by_role("status").filter(has_text="saved")).to_be_visible()

    # Typing first and choosing the account after keeps what was typed (the fields swap in place).
    page.get_by_role("link", name="New ticket").first.click()
    fill_ticket(page, title="Mail server slow", requester_email="")
    page.locator("#id_account").select_option(str(motadata.pk))
    expect(page.locator('#provider-fields[data-kind="motadata"]')).to_be_visible()
    expect(page.locator("#id_title")).to_have_value("Mail server slow")
    fill(page, {"#id_motadata-urgency": "URGENT"})
    page.get_by_role("button", name="Create ticket").click()
    expect(page.locator("#id_requester_email")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#form-errors")).to_be_visible()
    expect(page.locator("#id_title")).to_have_value("Mail server slow")
    expect(page.locator("#id_motadata-urgency")).to_have_value("URGENT")
    assert Ticket.objects.filter(account=motadata).count() == 0


def test_an_agent_cannot_open_provider_configuration(page: Page, live_server, account_factory, agent_user):
    account = account_factory("kapture")
    sign_in(page, live_server.url)
    expect(page.get_by_role("link", name="Provider accounts")).to_have_count(0)
    response = page.goto(f"{live_server.url}/admin/providers/provideraccount/{account.pk}/change/")
    assert response.status == 403 or "/login/" in page.url
    expect(page.locator("body")).not_to_contain_text(account.base_url)


def test_the_pages_read_at_phone_width(page: Page, live_server, account_factory, agent_user, screenshot_dir):
    account = account_factory("knight")
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, live_server.url)
    expect(page.get_by_role("link", name="New ticket").first).to_be_visible()
    sideways = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    assert page.evaluate(sideways) <= 1  # nothing sticks out sideways
    open_create_form(page, account)
    fill_ticket(page, title="Phone-sized ticket")
    assert page.evaluate(sideways) <= 1
    page.get_by_role("button", name="Create ticket").click()
    expect(page.get_by_role("heading", name="TC-")).to_be_visible()
    assert page.evaluate(sideways) <= 1
    page.screenshot(path=screenshot_dir / "detail-phone.png", full_page=True)
