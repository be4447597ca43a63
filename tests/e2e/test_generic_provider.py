"""The generic kind, done as a new user would: in the admin, an account configured by pasting
the Kapture configuration into its sections and typing the token; then, with a real worker
and the sandbox's Kapture over HTTP, a ticket syncs, a status change goes out, a pull brings a
change made in Kapture back, a Kapture refusal answered with HTTP 200 is a failure in the staff
UI, and the configuration exported and imported into a fresh account works unchanged."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from playwright.sync_api import Browser, Page, expect

from providers import api_config_form
from providers.models import ProviderAccount
from tests.e2e.test_admin_bulk import admin_sign_in
from tests.e2e.test_staff_ui import SYNC_TIMEOUT_MS, fill_ticket, sign_in, wait_until_synced
from tests.helpers import wait_for
from tickets import pull, services
from tickets.models import Status, SyncState, Ticket

NAME = "Kapture via generic"


@pytest.fixture
def provider_admin(transactional_db) -> User:
    return User.objects.create_superuser("root", "root@example.com", "root-pass")


def held_ticket(sandbox, remote_id: str) -> dict:
    (held,) = [t for t in sandbox.state("kapture")["tickets"] if t["ticket_id"] == remote_id]
    return held


def create_in_staff_ui(page: Page, account: ProviderAccount, title: str) -> None:
    page.get_by_role("link", name="New ticket").first.click()
    expect(page.get_by_role("heading", name="New ticket", exact=True)).to_be_visible()
    page.locator("#id_account").select_option(str(account.pk))
    page.wait_for_load_state("networkidle")  # the account's own fields are fetched on change
    fill_ticket(page, title=title)
    page.get_by_role("button", name="Create ticket").click()
    expect(page.get_by_role("status").filter(has_text="saved")).to_be_visible()


def configure_in_admin(page: Page, base_url: str, sandbox) -> ProviderAccount:
    """The provider admin's part: kind, base URL, the sections pasted, the token typed."""
    admin_sign_in(page, base_url)
    page.goto(f"{base_url}/admin/providers/provideraccount/add/")
    page.locator("#id_name").fill(NAME)
    api_sections = page.locator("fieldset.kind-generic")
    expect(api_sections.first).to_be_hidden()  # only for the generic kind
    page.locator("#id_kind").select_option("generic")
    expect(api_sections).to_have_count(len(api_config_form.SECTIONS))
    expect(api_sections.first).to_be_visible()
    page.locator("#id_base_url").fill(sandbox.base_url("kapture"))
    # The worked example of the documentation, pasted section by section.
    for field, text in api_config_form.split(api_config_form.examples()["kapture"]).items():
        page.locator(f"#id_{field}").fill(text)
    page.locator("#id_cred__generic__token").fill(sandbox.credentials["kapture"]["token"])
    page.locator('input[name="_continue"]:not([aria-hidden])').click()
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    # The configuration is shown back; the token never is.
    expect(page.locator("body")).not_to_contain_text(sandbox.credentials["kapture"]["token"])
    return ProviderAccount.objects.get(name=NAME)


@pytest.mark.worker
def test_a_generic_account_configured_for_kapture_in_the_admin_syncs_both_ways_and_survives_export(
    page: Page,
    browser: Browser,
    live_server,
    worker,
    sandbox,
    provider_admin,
    agent_user,
    tmp_path,
    monkeypatch,
    screenshot_dir,
):
    account = configure_in_admin(page, live_server.url, sandbox)
    assert account.kind == "generic"
    assert account.api_config == api_config_form.examples()["kapture"]
    page.locator("fieldset.kind-generic").nth(1).scroll_into_view_if_needed()
    page.screenshot(path=screenshot_dir / "generic-account.png")

    # Test connection, as a provider admin checks a new account.
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator(".messagelist .success")).to_contain_text(
        f"{NAME}: Connected: Kapture accepted the token."
    )

    # Try it: how the configuration reads Kapture's HTTP-200 refusal, before any ticket.
    page.get_by_role("link", name="Try a request").click()
    page.locator("#id_operation").select_option("create")
    page.get_by_label("Answer body").fill('{"message": "title is missing", "status": "failed"}')
    page.get_by_role("button", name="Try it").click()
    expect(page.locator("#try-error")).to_contain_text("The provider refused the request as invalid.")
    expect(page.locator("#try-error")).to_contain_text("title is missing")
    expect(page.locator("#try-request")).to_contain_text("POST ")
    expect(page.locator("#try-request")).to_contain_text("Authorization: ")
    expect(page.locator("body")).not_to_contain_text(sandbox.credentials["kapture"]["token"])
    page.screenshot(path=screenshot_dir / "generic-try-it.png", full_page=True)
    assert sandbox.state("kapture")["tickets"] == []  # nothing was sent

    # An agent creates a ticket in the staff UI; the worker creates it in Kapture.
    agent = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    sign_in(agent, live_server.url)
    create_in_staff_ui(agent, account, "Printer on fire")
    wait_until_synced(agent)
    ticket = Ticket.objects.get(account=account)
    held = held_ticket(sandbox, ticket.remote_id)
    assert held["title"] == "Printer on fire"
    assert f"[Ticket Console {ticket.reference}]" in held["ticket_details"]
    expect(agent.locator("[data-remote-for]")).to_contain_text(ticket.remote_number or ticket.remote_id)

    # A status change goes out: Kapture holds the mapped sub-status.
    agent.locator("#id_status").select_option("resolved")
    agent.get_by_role("button", name="Change status").click()
    expect(agent.get_by_role("status").filter(has_text="is now Resolved")).to_be_visible()
    wait_until_synced(agent)
    outbound = account.status_map["outbound"]
    assert held_ticket(sandbox, ticket.remote_id)["substatus"] == outbound["resolved"]

    # In Kapture, an agent reopens it as pending; the pull brings the change back.
    sandbox.control("kapture/set-substatus", {"ticket_id": ticket.remote_id, "substatus": "IN"})
    assert pull.pull_account(account=account).fetched == 1
    agent.reload()
    expect(agent.locator("#ticket-status")).to_have_text("Pending")
    assert Ticket.objects.get(pk=ticket.pk).status == Status.PENDING

    # Kapture refuses the next create with HTTP 200 and "status": "failed": a failure.
    sandbox.control("kapture/refuse-next", {"message": "title is missing"})
    create_in_staff_ui(agent, account, "Refused by Kapture")
    expect(agent.locator("#sync-status [data-sync-id]")).to_have_text("Failed", timeout=SYNC_TIMEOUT_MS)
    expect(agent.locator("#sync-sentence")).to_have_text(
        "The provider refused it; change what it names, then retry."
    )
    expect(agent.locator("main")).to_contain_text("title is missing")
    refused = Ticket.objects.get(title="Refused by Kapture")
    assert refused.sync_state == SyncState.FAILED and not refused.remote_id

    # Exported, and imported as a fresh account, the configuration works unchanged.
    exported = tmp_path / "accounts.json"
    call_command("export_accounts", "--output", str(exported))
    document = json.loads(exported.read_text())
    (entry,) = [e for e in document["accounts"] if e["name"] == NAME]
    assert entry["api_config"] == account.api_config
    assert sandbox.credentials["kapture"]["token"] not in exported.read_text()
    entry["name"] = "Kapture via generic, imported"
    entry["credentials"] = {"token": {"env": "IMPORTED_KAPTURE_TOKEN"}}
    monkeypatch.setenv("IMPORTED_KAPTURE_TOKEN", sandbox.credentials["kapture"]["token"])
    imported_file = tmp_path / "imported.json"
    imported_file.write_text(json.dumps({"accounts": [entry]}))
    call_command("import_accounts", str(imported_file))
    imported = ProviderAccount.objects.get(name="Kapture via generic, imported")
    assert imported.api_config == account.api_config
    copy = services.create_ticket(
        account=imported, title="Via the imported account", description="Same configuration."
    )
    wait_for(
        lambda: Ticket.objects.get(pk=copy.pk).sync_state == SyncState.SYNCED,
        timeout=SYNC_TIMEOUT_MS / 1000,
        message="the imported account's ticket never synced",
    )
    assert (
        held_ticket(sandbox, Ticket.objects.get(pk=copy.pk).remote_id)["title"] == "Via the imported account"
    )


def test_start_from_an_example_fills_every_section_and_a_mistake_keeps_what_was_typed(
    page: Page, live_server, sandbox, provider_admin
):
    admin_sign_in(page, live_server.url)
    page.goto(f"{live_server.url}/admin/providers/provideraccount/add/")
    page.locator("#id_name").fill("Keliweb via generic")
    page.locator("#id_kind").select_option("generic")
    page.locator("#id_base_url").fill(sandbox.base_url("keliweb"))
    page.locator("#id_api_example").select_option("keliweb")
    example = api_config_form.split(api_config_form.examples()["keliweb"])
    for field, text in example.items():
        expect(page.locator(f"#id_{field}")).to_have_value(text)
    # A typo in one section: refused there, in words; every section comes back as typed.
    typo = example["api_create"].replace('"method"', '"methd"', 1)
    page.locator("#id_api_create").fill(typo)
    page.locator('input[name="_continue"]:not([aria-hidden])').click()
    expect(page.locator(".errornote")).to_be_visible()
    create_row = page.locator(".form-row.field-api_create")
    expect(create_row.locator(".errorlist")).to_contain_text("methd")
    expect(page.locator("#id_api_create")).to_have_value(typo)
    expect(page.locator("#id_api_fetch")).to_have_value(example["api_fetch"])
    expect(page.locator("fieldset.kind-generic").first).to_be_visible()
    assert not ProviderAccount.objects.exists()

    # Another example over what was typed: only when the admin confirms.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.locator("#id_api_example").select_option("knight")
    expect(page.locator("#id_api_create")).to_have_value(typo)
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#id_api_example").select_option("knight")
    knight = api_config_form.split(api_config_form.examples()["knight"])
    expect(page.locator("#id_api_create")).to_have_value(knight["api_create"])
