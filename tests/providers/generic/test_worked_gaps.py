"""The worked configurations do what the built-in adapters do, against the same sandboxes:
Knight's impact and transaction ids, Keliweb's ticket link and conversation, Kapture's extra
keys, field errors on console fields, and the generic demo account.

Each test runs a generic account configured with the example and, where the built-in adapter
answers the same question, compares with what the built-in one gives on the same sandbox."""

from __future__ import annotations

import json

import pytest

from providers.demo import ensure_demo_accounts
from providers.errors import ProviderTransientError, ProviderValidationError
from providers.generic.worked import generic_credentials, load_example
from providers.keliweb import KeliwebProvider
from providers.knight import KnightProvider
from providers.models import ProviderAccount
from providers.registry import EMULATORS, get_provider_class
from tests.example_provider import ExampleProvider
from tickets.models import Ticket

pytestmark = pytest.mark.django_db


def generic_account(sandbox, account_factory, vendor: str, *, settings=None) -> ProviderAccount:
    return account_factory(
        "generic",
        name=f"Generic {vendor}",
        base_url=sandbox.base_url(vendor),
        api_config=load_example(vendor),
        settings={**get_provider_class(vendor).demo_settings, **(settings or {})},
        credentials=generic_credentials(vendor, sandbox.credentials[vendor]),
    )


def ticket_of(account, **fields) -> Ticket:
    values = {
        "title": "Printer on fire",
        "description": "Third floor, room 301.",
        "requester_email": "tim@acme.com",
        "requester_name": "Tim",
        "priority": "high",
    }
    return Ticket.objects.create(account=account, **{**values, **fields})


# --- Knight: impact, X-Transaction-Id and X-Application-Name as the adapter sends them -------------
def test_knight_gets_the_impact_and_the_adapters_transaction_ids(sandbox, account_factory):
    account = generic_account(sandbox, account_factory, "knight")
    provider = account.get_provider()
    ticket = ticket_of(account, impact="medium")
    created_as = Ticket(reference=ticket.reference, revision=ticket.revision)
    ref = provider.create(ticket)
    ticket.remote_id, ticket.status, ticket.revision = ref.remote_id, "resolved", ticket.revision + 1
    provider.update(ticket)

    [held] = sandbox.state("knight")["tickets"]
    assert (held["ticketImpact"], held["status"]) == ("Medium", "RESOLVE")
    create_call, update_call = sandbox.state("knight")["calls"]
    assert create_call["transactionId"] == KnightProvider.transaction_id(created_as, "create")
    assert update_call["transactionId"] == KnightProvider.transaction_id(ticket, "update")
    assert {create_call["applicationName"], update_call["applicationName"]} == {"Ticket Console"}


def test_knight_a_ticket_without_an_impact_sends_none(sandbox, account_factory):
    account = generic_account(sandbox, account_factory, "knight")
    account.get_provider().create(ticket_of(account))
    [held] = sandbox.state("knight")["tickets"]
    assert "ticketImpact" not in held


def test_knight_a_resent_create_carries_the_same_transaction_id(sandbox, account_factory):
    account = generic_account(sandbox, account_factory, "knight", settings={"application_name": "Ops"})
    provider = account.get_provider()
    ticket = ticket_of(account)
    sandbox.faults(script=["lost"], vendors=["knight"])
    with pytest.raises(ProviderTransientError):
        provider.create(ticket)
    provider.create(ticket)
    first, second = sandbox.state("knight")["calls"]
    assert first["transactionId"] == second["transactionId"]
    assert first["applicationName"] == "Ops"
    assert len(sandbox.state("knight")["tickets"]) == 1


# --- Keliweb: the client-area link and the conversation ------------------------------------------
def keliweb_link(base: str, held: dict) -> str:
    return f"{base.rstrip('/')}/viewticket.php?tid={held['tid']}&c={held['c']}"


def test_keliweb_links_the_ticket_page_from_the_setting_or_the_base_url(sandbox, account_factory):
    account = generic_account(sandbox, account_factory, "keliweb")
    ref = account.get_provider().create(ticket_of(account))
    [held] = sandbox.state("keliweb")["tickets"]
    assert ref.remote_url == keliweb_link(account.base_url, held)
    assert (ref.remote_number, ref.remote_status) == (held["tid"], "Open")

    account.settings = {**account.settings, "client_area_url": "https://my.keliweb.example"}
    account.save()
    provider = account.get_provider()
    ref = provider.create(ticket_of(account))
    [held] = [t for t in sandbox.state("keliweb")["tickets"] if str(t["ticketid"]) == ref.remote_id]
    assert ref.remote_url == keliweb_link("https://my.keliweb.example", held)

    # A ticket linked by id (found at the provider) gets its number and link from the fetch.
    probe = Ticket(account=account, reference="TC-X", title="x", remote_id=ref.remote_id)
    [state] = provider.fetch([probe])
    linked = provider.ref_from_state(state)
    assert (linked.remote_number, linked.remote_url) == (held["tid"], ref.remote_url)


def test_keliweb_reads_the_conversation_as_the_adapter_does(sandbox, account_factory):
    account = generic_account(sandbox, account_factory, "keliweb")
    provider = account.get_provider()
    assert account.provider_class.reads_conversation
    ticket = ticket_of(account)
    ticket.remote_id = provider.create(ticket).remote_id
    provider.reply(ticket, "Any news?")
    sandbox.control("keliweb/staff-reply", {"ticketid": ticket.remote_id, "message": "We are on it."})

    [state] = provider.fetch([ticket])
    assert [(r.body, r.by_provider_staff) for r in state.replies] == [
        ("Any news?", False),
        ("We are on it.", True),
    ]  # the opening message (WHMCS's reply 0) is the description, not a reply
    assert state.replies[1].author == "Keliweb Support"
    built_in = account_factory("keliweb")
    [own] = KeliwebProvider(built_in).fetch([ticket])
    assert state.replies == own.replies


# --- Kapture: extra keys from the account and the ticket ----------------------------------------
def test_kapture_merges_the_extra_keys_and_explicit_keys_win(sandbox, account_factory):
    account = generic_account(
        sandbox, account_factory, "kapture", settings={"extra_keys": {"channel": "console", "order_id": "-"}}
    )
    ticket = ticket_of(account, extra={"extra_keys": {"order_id": "A-17", "title": "not this"}})
    ref = account.get_provider().create(ticket)
    [held] = sandbox.state("kapture")["tickets"]
    assert held["extra"] == {"channel": "console", "order_id": "A-17"}
    assert held["title"] == "Printer on fire"
    assert ref.remote_url.startswith("https://sandbox.kapturecrm.com/")


def test_kapture_refuses_extra_keys_that_are_not_an_object(sandbox, account_factory):
    account = generic_account(sandbox, account_factory, "kapture")
    ticket = ticket_of(account, extra={"extra_keys": ["order_id", "A-17"]})
    with pytest.raises(ProviderValidationError, match=r"ticket\.extra\.extra_keys is list"):
        account.get_provider().create(ticket)
    assert sandbox.state("kapture")["tickets"] == []


# --- field errors on console fields ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("vendor", "field_errors"),
    [
        ("particlespace", {"title": ["The title field is required."]}),
        ("kapture", {"title": ["title is missing"]}),
        ("keliweb", {"title": ["Subject is required"]}),
    ],
)
def test_a_refused_create_names_the_console_field(vendor, field_errors, sandbox, account_factory):
    account = generic_account(sandbox, account_factory, vendor)
    with pytest.raises(ProviderValidationError) as refused:
        account.get_provider().create(ticket_of(account, title=""))
    assert refused.value.field_errors == field_errors
    built_in = account_factory(vendor)
    with pytest.raises(ProviderValidationError) as own:
        built_in.get_provider().create(ticket_of(built_in, title=""))
    assert refused.value.field_errors == own.value.field_errors


# --- the generic demo account -----------------------------------------------------------------------
def test_the_generic_demo_account_works_against_the_kapture_sandbox(sandbox, tmp_path, settings):
    settings.STATE_DIR = tmp_path
    (tmp_path / "sandbox-credentials.json").write_text(json.dumps(sandbox.credentials))
    names = ensure_demo_accounts(sandbox.server.url)
    assert "Sandbox Kapture CX (generic)" in names
    demo = ProviderAccount.objects.get(name="Sandbox Kapture CX (generic)")
    assert (demo.kind, demo.base_url) == ("generic", sandbox.base_url("kapture"))
    assert demo.provider_class.capabilities == {"create", "update", "fetch", "reply", "test"}
    provider = demo.get_provider()
    assert provider.test_connection() == "Connected: Kapture accepted the token."
    ticket = ticket_of(demo)
    ticket.remote_id = provider.create(ticket).remote_id
    [state] = provider.fetch([ticket])
    assert (state.remote_id, state.remote_status) == (ticket.remote_id, "US")

    stamped = ProviderAccount.objects.get(pk=demo.pk).credentials_updated_at
    ensure_demo_accounts(sandbox.server.url)  # a restart changes nothing
    assert ProviderAccount.objects.get(pk=demo.pk).credentials_updated_at == stamped
    assert ProviderAccount.objects.filter(kind="generic").count() == 1
    assert set(ProviderAccount.objects.exclude(kind="generic").values_list("kind", flat=True)) == set(
        EMULATORS
    )


# --- a conversation of another shape: the test-only Example Desk (tests/example_provider.py) ------
EXAMPLE_DESK = {
    "label": "Example Desk (generic)",
    "auth": {"scheme": "oauth2", "grant": "client_credentials", "token_url": "/oauth/token"},
    "status_map": ExampleProvider.default_status_map,
    "priority_map": ExampleProvider.default_priority_map,
    "operations": {
        "create": {
            "path": "/api/tickets",
            "body": {
                "subject": "{{ ticket.title }}",
                "body": "{{ ticket.description_with_marker }}",
                "status": "{{ remote.status }}",
                "priority": "{{ remote.priority }}",
                "requester": "{{ ticket.requester_email }}",
            },
            "response": {
                "remote_id": "id",
                "remote_number": "number",
                "remote_url": "url",
                "remote_status": "status",
            },
        },
        "fetch": {
            "method": "GET",
            "path": "/api/tickets/{{ ticket.remote_id }}",
            "response": {
                "remote_id": "id",
                "remote_status": "status",
                "replies": {
                    "items": "replies",
                    "remote_id": "id",
                    "body": "body",
                    "author": "author",
                    "date": "created_at",
                    "by_staff": {"path": "staff", "equals": True},
                },
            },
        },
        "reply": {
            "path": "/api/tickets/{{ ticket.remote_id }}/replies",
            "body": {"body": "{{ reply.text }}"},
        },
    },
    "errors": [
        {
            "when": {"status": [422]},
            "then": "validation",
            "field_errors": "errors",
            "field_names": {
                "subject": "title",
                "body": "description",
                "priority": "priority",
                "status": "status",
            },
        }
    ],
}


def test_example_desk_conversation_and_field_errors_as_its_adapter_reads_them(sandbox, account_factory):
    account = account_factory(
        "generic",
        name="Generic Example Desk",
        base_url=sandbox.base_url("example"),
        api_config=EXAMPLE_DESK,
        credentials=sandbox.credentials["example"],
    )
    assert account.provider_class.reads_conversation
    provider = account.get_provider()
    ticket = ticket_of(account)
    ticket.remote_id = provider.create(ticket).remote_id
    provider.reply(ticket, "Any news?")
    emulator = sandbox.server.emulators["example"]
    with emulator.lock:  # an agent answers in Example Desk's own UI
        emulator.tickets[ticket.remote_id]["replies"].append(
            {"id": 2, "body": "Toner ordered.", "author": "Dana (agent)", "staff": True}
        )

    [state] = provider.fetch([ticket])
    assert [(r.remote_id, r.body, r.author, r.by_provider_staff) for r in state.replies] == [
        ("1", "Any news?", "API client", False),
        ("2", "Toner ordered.", "Dana (agent)", True),
    ]
    built_in = account_factory("example")
    [own] = built_in.get_provider().fetch([ticket])
    assert state.replies == own.replies

    with pytest.raises(ProviderValidationError) as refused:
        provider.create(ticket_of(account, title=""))
    with pytest.raises(ProviderValidationError) as own_refusal:
        built_in.get_provider().create(ticket_of(built_in, title=""))
    assert (
        refused.value.field_errors
        == own_refusal.value.field_errors
        == {"title": ["The subject is required."]}
    )
