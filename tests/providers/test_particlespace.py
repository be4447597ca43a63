"""Particle Space: payload builders and parsers on the seed (004), error classification, then
the adapter against the sandbox over HTTP (key exchange, tokens that expire, full-replacement
updates)."""

import json
import re
from pathlib import Path

import pytest
import requests
import responses
from django.core.exceptions import ValidationError

from providers.errors import (
    ProviderAuthError,
    ProviderConfigurationError,
    ProviderError,
    ProviderNotFoundError,
    ProviderResponseError,
    ProviderTransientError,
    ProviderValidationError,
)
from providers.models import ProviderAccount
from providers.particlespace import ParticleSpaceProvider, ParticleSpaceTicketForm
from providers.sandbox.particlespace import ParticleSpaceEmulator
from tickets.models import Status, Ticket

SEEDS = Path(__file__).resolve().parent / "seeds"  # the vendors' own excerpts
BASE = "https://api.particlespace.com"
SECRET, PUBLISH = "sk_test_SECRET123456", "pk_test_PUBLISH123456"


def seed_update_fields() -> dict:
    """The form fields of seed 004's NodeJS example (`qs.stringify({...})`), exactly."""
    text = (SEEDS / "004_dc623fb31d17e194.txt").read_text()
    start = text.index("qs.stringify({") + len("qs.stringify(")
    literal = text[start : text.index("});", start) + 1]
    return json.loads(re.sub(r",\s*}", "}", literal.replace("'", '"')))


def unsaved_account(**kwargs) -> ProviderAccount:
    defaults = {"name": "p", "kind": "particlespace", "base_url": BASE, "timeout": 2}
    account = ProviderAccount(**{**defaults, **kwargs})
    account.set_credentials({"secret_key": SECRET, "publish_key": PUBLISH})
    return account


def unsaved_ticket(**kwargs) -> Ticket:
    defaults = {
        "reference": "TC-000042",
        "title": "Leaking faucet",
        "description": "Leak under the kitchen sink in 1A requires new part.",
        "status": "new",
    }
    return Ticket(**{**defaults, **kwargs})


def notify_by_email(**extra) -> dict:
    return {"notify": True, "type": "email", "contacts": "example@example.com", "automated": True, **extra}


# --- pure hooks -----------------------------------------------------------------------------
def test_update_sends_exactly_the_seed_examples_form_fields_to_put_ticket_id():
    seed = seed_update_fields()
    ticket = unsaved_ticket(remote_id="tic_8a7b", status="on_hold", extra=notify_by_email())
    request = ParticleSpaceProvider(unsaved_account()).build_update(ticket)
    assert (request.method, request.path, request.json) == ("PUT", "/api/v1/ticket/tic_8a7b", None)
    assert {k: str(v) for k, v in request.form.items()} == {
        **{k: str(v) for k, v in seed.items()},
        "description": seed["description"] + "\n\n[Ticket Console TC-000042]",
    }


def test_create_without_notify_sends_the_required_fields_only():
    request = ParticleSpaceProvider(unsaved_account()).build_create(unsaved_ticket(description=""))
    assert (request.method, request.path) == ("POST", "/api/v1/ticket/new")
    assert request.form == {
        "title": "Leaking faucet",
        "description": "[Ticket Console TC-000042]",
        "status": "NEW",
        "notify": 0,
        "automated": 0,
    }


def test_account_settings_fill_what_the_ticket_leaves_blank_and_the_ticket_wins():
    account = unsaved_account(
        settings={
            "notify": True,
            "type": "sms",
            "contacts": "1112223333, +4445556666",
            "automated": "1",
        }
    )
    provider = ParticleSpaceProvider(account)
    form = provider.build_create(unsaved_ticket()).form
    assert (form["notify"], form["type"], form["contacts"], form["automated"]) == (
        1,
        "sms",
        "1112223333,+4445556666",
        1,
    )
    own = provider.build_create(unsaved_ticket(extra={"notify": False, "automated": False})).form
    assert (own["notify"], own["automated"]) == (0, 0)
    assert "contacts" not in own and "type" not in own


def test_subject_and_message_are_sent_under_their_api_names_when_set():
    ticket = unsaved_ticket(
        extra=notify_by_email(
            time="2026-11-24 09:30",
            notify_subject="Faucet",
            notify_message="A plumber is on the way",
        )
    )
    form = ParticleSpaceProvider(unsaved_account()).build_create(ticket).form
    assert (form["time"], form["notifySubject"], form["notifyMessage"]) == (
        "2026-11-24 09:30",
        "Faucet",
        "A plumber is on the way",
    )


def test_status_goes_through_the_accounts_column_map_or_the_tickets_column():
    account = unsaved_account(status_map={"outbound": {"new": "TODO"}, "inbound": {"TODO": "new"}})
    provider = ParticleSpaceProvider(account)
    assert provider.build_create(unsaved_ticket()).form["status"] == "TODO"
    assert provider.build_create(unsaved_ticket(extra={"column": "BACKLOG"})).form["status"] == "BACKLOG"
    unmapped = "no Particle Space value for the console status 'open'"
    with pytest.raises(ProviderConfigurationError, match=unmapped):
        provider.build_create(unsaved_ticket(status="open"))


def test_default_column_map_covers_every_console_status_both_ways():
    outbound = ParticleSpaceProvider.default_status_map["outbound"]
    inbound = ParticleSpaceProvider.default_status_map["inbound"]
    assert set(outbound) == set(Status.values)
    assert set(outbound.values()) == set(ParticleSpaceEmulator(None).snapshot()["columns"])
    assert {inbound[outbound[s]] for s in Status.values} <= set(Status.values)
    assert inbound["DONE"] == "resolved"


def test_token_request_exchanges_both_keys_as_form_fields():
    request = ParticleSpaceProvider(unsaved_account()).build_token_request()
    assert (request.method, request.path, request.url) == ("POST", "/api/v1/authenticate", None)
    assert request.form == {"secret_key": SECRET, "publish_key": PUBLISH}


@pytest.mark.parametrize(
    ("body", "token", "expires_in"),
    [
        ({"data": {"token": "t1"}}, "t1", None),
        ({"data": {"access_token": "t2", "expires_in": 300}}, "t2", 300),
        ({"token": "t3", "expires_in": "60"}, "t3", 60),
        ({"data": {"token": "t4", "expires_in": "soon"}}, "t4", None),
        ({"status": "success", "data": {}}, "", None),
    ],
)
def test_token_answers_are_read_leniently(body, token, expires_in):
    parsed = ParticleSpaceProvider(unsaved_account()).parse_token(body)
    assert (parsed.access_token, parsed.expires_in) == (token, expires_in)


@pytest.mark.parametrize(
    "body",
    [
        {"data": {"id": "tic_1a2b"}},
        {"data": {"ticket": {"id": "tic_1a2b"}}},
        {"id": "tic_1a2b"},
        {"ticket_id": "tic_1a2b"},
    ],
)
def test_create_answers_are_read_leniently(body):
    ref = ParticleSpaceProvider(unsaved_account()).parse_create(body, unsaved_ticket())
    assert (ref.remote_id, ref.remote_number, ref.remote_url, ref.remote_status) == (
        "tic_1a2b",
        "tic_1a2b",
        "",
        "NEW",
    )


def test_create_answer_url_is_kept_and_a_missing_id_is_a_response_error():
    provider = ParticleSpaceProvider(unsaved_account())
    answer = {"data": {"id": "tic_9", "url": "https://app.particlespace.com/t/9"}}
    ref = provider.parse_create(answer, unsaved_ticket())
    assert ref.remote_url == "https://app.particlespace.com/t/9"
    with pytest.raises(ProviderResponseError, match="without a ticket id"):
        provider.parse_create({"status": "success", "data": {}}, unsaved_ticket())


@pytest.mark.parametrize(
    ("body", "error", "fields"),
    [
        ({"success": False, "message": "Invalid API keys"}, ProviderAuthError, {}),
        ({"status": "error", "message": "Token expired"}, ProviderAuthError, {}),
        ({"status": "error", "message": "Ticket not found"}, ProviderNotFoundError, {}),
        (
            {
                "status": "error",
                "message": "The title field is required.",
                "errors": {"title": ["The title field is required."], "notifySubject": ["Too long."]},
            },
            ProviderValidationError,
            {"title": ["The title field is required."], "notify_subject": ["Too long."]},
        ),
        ({"success": "false", "message": "Board is archived"}, ProviderValidationError, {}),
    ],
)
def test_http_200_failure_bodies_are_errors_with_particle_spaces_words(body, error, fields):
    with pytest.raises(error) as raised:
        ParticleSpaceProvider(unsaved_account()).check_body(body)
    assert body["message"] in raised.value.message
    if error is ProviderValidationError:
        assert raised.value.field_errors == fields


def test_success_bodies_pass():
    provider = ParticleSpaceProvider(unsaved_account())
    provider.check_body({"status": "success", "data": {"id": "tic_1"}})
    provider.check_body({"success": True, "data": {"id": "tic_1"}})


def test_fetch_and_reply_are_refused_with_the_reason():
    provider = ParticleSpaceProvider(unsaved_account())
    no_read = "no read endpoint; the console's copy is the record"
    with pytest.raises(ProviderConfigurationError, match=no_read):
        provider.fetch([unsaved_ticket(remote_id="tic_1")])
    with pytest.raises(ProviderConfigurationError, match="takes no comments"):
        provider.reply(unsaved_ticket(remote_id="tic_1"), "hello")
    assert ParticleSpaceProvider.capabilities == {"create", "update", "test"}


# --- credentials ----------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["test", "live"])
def test_a_matching_key_pair_is_accepted(mode):
    values = {"secret_key": f" sk_{mode}_abc ", "publish_key": f"pk_{mode}_def\n"}
    assert ParticleSpaceProvider.validate_credentials(values) == {}


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"secret_key": "abc123", "publish_key": "pk_test_x"}, "secret_key", "sk_test_ or sk_live_"),
        ({"secret_key": "sk_test_x", "publish_key": ""}, "publish_key", "pk_test_ or pk_live_"),
        ({"secret_key": "pk_test_x", "publish_key": "sk_test_x"}, "secret_key", "sk_test_ or sk_live_"),
        ({"secret_key": "sk_live_x", "publish_key": "pk_test_x"}, "publish_key", "same mode"),
    ],
)
def test_bad_key_pairs_are_refused_on_the_right_field(values, field, message):
    assert message in ParticleSpaceProvider.validate_credentials(values)[field]


def test_credential_fields_refuse_a_key_without_its_prefix():
    field = ParticleSpaceProvider.credential_fields["publish_key"]
    with pytest.raises(ValidationError, match="pk_test_ or pk_live_"):
        field.clean("pub_123")
    assert field.clean("pk_live_123") == "pk_live_123"


def test_sandbox_credentials_carry_test_mode_prefixes():
    credentials = ParticleSpaceEmulator.generate_credentials()
    assert set(credentials) == set(ParticleSpaceProvider.credential_fields)
    assert ParticleSpaceProvider.validate_credentials(credentials) == {}


# --- the extra form -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"notify": True, "contacts": "a@example.com"}, "type", "notification type (email or sms)"),
        ({"notify": True, "type": "email"}, "contacts", "Particle Space needs contacts to notify"),
        ({"notify": True, "type": "email", "contacts": " , "}, "contacts", "needs contacts to notify"),
        ({"notify": True, "type": "fax", "contacts": "1112223333"}, "type", "Select a valid choice"),
        (
            {"notify": True, "type": "email", "contacts": "a@example.com,not-an-email"},
            "contacts",
            "'not-an-email' is not a valid email address",
        ),
        (
            {"notify": True, "type": "sms", "contacts": "1112223333,555-1234"},
            "contacts",
            "'555-1234' is not a phone number",
        ),
        ({"type": "sms", "contacts": "+12"}, "contacts", "'+12' is not a phone number"),
    ],
)
def test_extra_form_refuses_bad_notification_settings_on_the_right_field(data, field, message):
    form = ParticleSpaceTicketForm(data=data)
    assert not form.is_valid()
    assert message in " ".join(form.errors[field])


def test_extra_form_accepts_and_tidies_a_valid_notification():
    form = ParticleSpaceTicketForm(
        data={
            "notify": True,
            "automated": False,
            "type": "sms",
            "contacts": " 1112223333 , +444555666677 ,",
            "column": " ON_HOLD ",
        }
    )
    assert form.is_valid(), form.errors
    cleaned = form.cleaned_data
    assert (cleaned["notify"], cleaned["automated"], cleaned["contacts"], cleaned["column"]) == (
        True,
        False,
        "1112223333,+444555666677",
        "ON_HOLD",
    )
    blank = ParticleSpaceTicketForm(data={})
    assert blank.is_valid() and blank.cleaned_data["notify"] is None  # blank: the account's default


# --- narrow HTTP classification (responses) --------------------------------------------------
def authenticate_ok(token="tok-ABCDEFGH"):
    responses.post(f"{BASE}/api/v1/authenticate", json={"data": {"token": token}})


@responses.activate
@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, {"status": "error", "message": "Body must be form-urlencoded"}),
        (403, {"error": "Forbidden", "message": "Forbidden"}),
        (422, {"status": "error", "message": "The status field is required."}),
        (429, {"message": "Too Many Attempts."}),
    ],
)
def test_error_bodies_of_each_shape_give_the_providers_own_words(status, body):
    # How each status is classified is the contract suite's (tests/providers/test_contract.py).
    authenticate_ok()
    responses.post(f"{BASE}/api/v1/ticket/new", json=body, status=status)
    with pytest.raises(ProviderError) as raised:
        ParticleSpaceProvider(unsaved_account()).create(unsaved_ticket())
    assert raised.value.message == body["message"]


@responses.activate
def test_a_422_maps_laravel_errors_onto_console_and_extra_fields():
    authenticate_ok()
    responses.put(
        f"{BASE}/api/v1/ticket/tic_1",
        status=422,
        json={
            "status": "error",
            "message": "The type field is required when notify is 1. (and 1 more error)",
            "errors": {
                "type": ["The type field is required when notify is 1."],
                "contacts": ["The contacts field is required when notify is 1."],
            },
        },
    )
    with pytest.raises(ProviderValidationError) as raised:
        ParticleSpaceProvider(unsaved_account()).update(unsaved_ticket(remote_id="tic_1"))
    assert raised.value.field_errors == {
        "type": ["The type field is required when notify is 1."],
        "contacts": ["The contacts field is required when notify is 1."],
    }
    assert raised.value.message == (
        "The type field is required when notify is 1. The contacts field is required when notify is 1."
    )


@responses.activate
def test_a_401_on_a_ticket_call_re_authenticates_once_then_gives_up():
    responses.post(f"{BASE}/api/v1/authenticate", json={"data": {"token": "tok-ABCDEFGH"}})
    expired = {"status": "error", "message": "Token expired"}
    responses.post(f"{BASE}/api/v1/ticket/new", status=401, json=expired)
    with pytest.raises(ProviderAuthError, match="Token expired"):
        ParticleSpaceProvider(unsaved_account()).create(unsaved_ticket())
    calls = [call.request.url.removeprefix(BASE) for call in responses.calls]
    assert calls == ["/api/v1/authenticate", "/api/v1/ticket/new"] * 2


@responses.activate
def test_a_token_answer_without_a_token_is_retried_not_held_as_an_unknown_create():
    responses.post(f"{BASE}/api/v1/authenticate", json={"status": "success", "data": {}})
    with pytest.raises(ProviderTransientError, match="no access token") as raised:
        ParticleSpaceProvider(unsaved_account()).create(unsaved_ticket())
    assert not raised.value.may_have_applied  # the ticket call was never sent
    assert [call.request.url.removeprefix(BASE) for call in responses.calls] == ["/api/v1/authenticate"]


# --- contract: the adapter against the sandbox over HTTP -------------------------------------
def state(sandbox) -> dict:
    return sandbox.state("particlespace")


@pytest.mark.django_db
def test_create_then_full_replacement_updates_against_the_sandbox(sandbox, account_factory):
    provider = ParticleSpaceProvider(account_factory("particlespace"))
    ticket = unsaved_ticket()
    ref = provider.create(ticket)
    assert ref.remote_id.startswith("tic_") and ref.remote_number == ref.remote_id
    assert (ref.remote_url, ref.remote_status) == ("", "NEW")
    [remote] = state(sandbox)["tickets"]
    assert (remote["id"], remote["title"], remote["status"], remote["notify"]) == (
        ref.remote_id,
        "Leaking faucet",
        "NEW",
        False,
    )
    assert remote["description"].endswith("[Ticket Console TC-000042]")

    ticket.remote_id, ticket.status = ref.remote_id, "on_hold"
    ticket.extra = notify_by_email(contacts="a@example.com,b@example.com", notify_subject="Faucet")
    assert provider.update(ticket).remote_status == "ON_HOLD"
    [remote] = state(sandbox)["tickets"]
    assert (remote["status"], remote["contacts"], remote["notifySubject"]) == (
        "ON_HOLD",
        ["a@example.com", "b@example.com"],
        "Faucet",
    )

    ticket.status, ticket.extra = "resolved", {}
    provider.update(ticket)
    current = state(sandbox)
    [remote] = current["tickets"]
    assert (remote["status"], remote["notify"], "contacts" in remote) == ("DONE", False, False)
    assert [set(u["fields"]) for u in current["updates"]] == [
        {
            "title",
            "description",
            "status",
            "notify",
            "time",
            "type",
            "contacts",
            "notifySubject",
            "automated",
        },
        {"title", "description", "status", "notify", "automated"},
    ]


@pytest.mark.django_db
def test_wrong_keys_are_an_auth_error_with_particle_spaces_message(sandbox, account_factory):
    wrong = ParticleSpaceEmulator.generate_credentials()
    provider = ParticleSpaceProvider(account_factory("particlespace", credentials=wrong))
    with pytest.raises(ProviderAuthError, match="Invalid API keys"):
        provider.create(unsaved_ticket())
    assert (state(sandbox)["tickets"], state(sandbox)["tokens_issued"]) == ([], 0)


@pytest.mark.django_db
def test_connection_test_authenticates_with_the_right_keys_only(sandbox, account_factory):
    provider = ParticleSpaceProvider(account_factory("particlespace"))
    assert provider.test_connection() == "Authenticated: Particle Space issued a token."
    assert provider.test_connection() == "Authenticated: Particle Space issued a token."
    assert state(sandbox)["tokens_issued"] == 2  # each test checks the keys, not a cached token
    wrong = account_factory(
        "particlespace", name="wrong", credentials=ParticleSpaceEmulator.generate_credentials()
    )
    with pytest.raises(ProviderAuthError, match="Invalid API keys"):
        ParticleSpaceProvider(wrong).test_connection()


@pytest.mark.django_db
def test_an_expired_token_costs_exactly_one_re_authentication(sandbox, account_factory):
    account = account_factory("particlespace")
    ticket = unsaved_ticket()
    ticket.remote_id = ParticleSpaceProvider(account).create(ticket).remote_id
    ParticleSpaceProvider(account).update(ticket)  # a new instance reuses the cached token
    assert state(sandbox)["tokens_issued"] == 1

    sandbox.control("expire-tokens", {})
    ticket.status = "open"
    provider = ParticleSpaceProvider(account)
    provider.update(ticket)
    provider.update(ticket)
    current = state(sandbox)
    assert current["tokens_issued"] == 2
    assert current["tickets"][0]["status"] == "OPEN"
    assert len(current["updates"]) == 3


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("ticket_kwargs", "settings", "field_errors"),
    [
        ({"title": " "}, {}, {"title": ["The title field is required."]}),
        (
            {"extra": {"column": "BACKLOG"}},
            {},
            {"status": ["The selected status is invalid: BACKLOG is not a column of this board."]},
        ),
        (
            {},
            {"notify": True},
            {
                "type": ["The type field is required when notify is 1."],
                "contacts": ["The contacts field is required when notify is 1."],
            },
        ),
        (
            {},
            {"notify": True, "type": "sms", "contacts": "12345"},
            {"contacts": ["The contacts field has an invalid sms contact: 12345."]},
        ),
    ],
)
def test_particle_space_refusals_are_validation_errors_on_the_right_field(
    sandbox, account_factory, ticket_kwargs, settings, field_errors
):
    account = account_factory("particlespace")
    account.settings = {**account.settings, **settings}  # make_account takes no settings
    provider = ParticleSpaceProvider(account)
    with pytest.raises(ProviderValidationError) as raised:
        provider.create(unsaved_ticket(**ticket_kwargs))
    assert raised.value.field_errors == field_errors
    assert raised.value.http_status == 422
    assert state(sandbox)["tickets"] == []


@pytest.mark.django_db
def test_updating_a_ticket_particle_space_does_not_know_is_not_found(sandbox, account_factory):
    provider = ParticleSpaceProvider(account_factory("particlespace"))
    with pytest.raises(ProviderNotFoundError, match="Ticket not found"):
        provider.update(unsaved_ticket(remote_id="tic_missing"))


@pytest.mark.django_db
def test_the_sandbox_refuses_json_bodies_and_partial_puts(sandbox, account_factory):
    base = sandbox.base_url("particlespace")
    keys = sandbox.credentials["particlespace"]
    assert requests.post(f"{base}/api/v1/authenticate", json=keys, timeout=5).status_code == 400
    token = requests.post(f"{base}/api/v1/authenticate", data=keys, timeout=5).json()["data"]["token"]
    auth = {"Authorization": f"Bearer {token}"}
    fields = {"title": "T", "description": "D", "status": "NEW", "notify": "0", "automated": "0"}

    as_json = requests.post(f"{base}/api/v1/ticket/new", json=fields, headers=auth, timeout=5)
    assert (as_json.status_code, as_json.json()["message"]) == (400, "Body must be form-urlencoded")
    no_token = requests.post(f"{base}/api/v1/ticket/new", data=fields, timeout=5)
    assert no_token.status_code == 401

    created = requests.post(f"{base}/api/v1/ticket/new", data=fields, headers=auth, timeout=5).json()
    ticket_id = created["data"]["id"]
    partial = requests.put(
        f"{base}/api/v1/ticket/{ticket_id}",
        data={**fields, "description": "", "status": "DONE"},
        headers=auth,
        timeout=5,
    )
    assert partial.status_code == 422
    assert partial.json()["errors"] == {"description": ["The description field is required."]}
    [remote] = state(sandbox)["tickets"]
    assert (remote["description"], remote["status"], state(sandbox)["updates"]) == ("D", "NEW", [])


@pytest.mark.django_db
def test_no_key_or_token_reaches_the_recorded_exchanges(sandbox, account_factory):
    exchanges = []
    account = account_factory("particlespace")
    provider = ParticleSpaceProvider(account, on_exchange=exchanges.append)
    ticket = unsaved_ticket()
    ticket.remote_id = provider.create(ticket).remote_id
    provider.update(ticket)
    token = provider.access_token()
    recorded = " ".join(
        f"{e.url} {e.request_headers} {e.request_body} {e.response_body} {e.error}" for e in exchanges
    )
    assert [e.url.removeprefix(account.base_url) for e in exchanges] == [
        "/api/v1/authenticate",
        "/api/v1/ticket/new",
        f"/api/v1/ticket/{ticket.remote_id}",
    ]
    for secret in (*sandbox.credentials["particlespace"].values(), token):
        assert secret not in recorded
    assert json.loads(exchanges[0].request_body) == {"secret_key": "[redacted]", "publish_key": "[redacted]"}
    assert json.loads(exchanges[0].response_body)["data"]["token"] == "[redacted]"
    assert exchanges[1].request_headers["Authorization"] == "[redacted]"
