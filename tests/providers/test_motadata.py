"""Motadata ServiceOps v1: payload builders and parsers on the seed (001), error
classification, the extra form, then the adapter against the sandbox over HTTP (password
grant, refresh, pasted tokens, expiry, attachments, custom fields)."""

import base64
import json
import re
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs

import pytest
import requests
import responses
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from providers.base import RemoteState
from providers.errors import (
    ProviderAuthError,
    ProviderConfigurationError,
    ProviderNotFoundError,
    ProviderValidationError,
)
from providers.http import ApiRequest
from providers.models import AccessToken, ProviderAccount
from providers.motadata import MotadataProvider, MotadataTicketForm, custom_field_errors
from tickets.models import Status, Ticket

SEEDS = Path(__file__).resolve().parent / "seeds"  # the vendors' own excerpts
BASE = "https://desk.example.com"
GRANT = {
    "client_id": "cid-123456",
    "client_secret": "csecret-SECRET",
    "username": "tim@acme.com",
    "password": "pw-SECRET-1",
}
PASTED = "pasted-TOKEN-abcdef"


def seed_text() -> str:
    return (SEEDS / "001_7a7e78d1999df138.txt").read_text()


def seed_request_body() -> dict:
    """The JSON body of seed 001's curl example, exactly."""
    text = seed_text()
    start = text.index("--data '") + len("--data '")
    return json.loads(text[start : text.index("'", start)])


def seed_response() -> dict:
    """The success envelope of seed 001, exactly."""
    text = seed_text()
    return json.loads(text[text.rindex("Response\n") + len("Response\n") :])


def seed_custom_fields() -> dict:
    """The seed's customFieldValueDetails example (its typographic quotes straightened)."""
    text = seed_text()
    label = "Example customFieldValueDetails value: "
    start = text.index(label) + len(label)
    literal = text[start : text.index("}}", start) + 2]
    return json.loads(literal.replace("“", '"').replace("”", '"'))


def unsaved_account(credentials=None, **kwargs) -> ProviderAccount:
    defaults = {
        "name": "m",
        "kind": "motadata",
        "base_url": BASE,
        "timeout": 2,
        "settings": {"category_name": "Incident"},
    }
    account = ProviderAccount(**{**defaults, **kwargs})
    account.set_credentials(GRANT if credentials is None else credentials)
    return account


def unsaved_ticket(**kwargs) -> Ticket:
    defaults = {
        "reference": "TC-000042",
        "title": "Need a new keyboard",
        "description": "Need a wireless keyboard",
        "requester_email": "tim@acme.com",
        "requester_name": "Tim",
        "tags": ["mouse"],
        "priority": "medium",
        "status": "new",
        "extra": {"location_name": "Ahmedabad"},
    }
    return Ticket(**{**defaults, **kwargs})


# --- pure hooks: payloads -------------------------------------------------------------------
def test_create_payload_has_the_seed_example_fields_plus_required_ones_and_the_marker():
    request = MotadataProvider(unsaved_account()).build_create(unsaved_ticket())
    assert (request.method, request.path) == ("POST", "/api/v1/incident")
    seed = seed_request_body()
    assert {key: request.json[key] for key in seed if key != "description"} == {
        key: value for key, value in seed.items() if key != "description"
    }
    assert request.json["description"] == "Need a wireless keyboard\n\n[Ticket Console TC-000042]"
    assert request.json["categoryName"] == "Incident"
    assert (request.json["priority"], request.json["urgency"]) == ("MEDIUM", "MEDIUM")
    assert request.json["ccEmailSet"] == []
    assert "impact" not in request.json  # the ticket has none and the extra sets none


def test_create_payload_takes_the_provider_fields_from_extra():
    ticket = unsaved_ticket(
        priority="urgent",
        impact="high",
        extra={
            "category_name": "Hardware",
            "urgency": "LOW",
            "cc_emails": ["a@acme.com", "b@acme.com"],
            "location_name": "Pune",
            "custom_fields": {"36": {"type": 2, "integerValue": 4}},
            "attachments_ref_names": ["f1.png", "f2.pdf"],
        },
    )
    body = MotadataProvider(unsaved_account()).build_create(ticket).json
    assert body["categoryName"] == "Hardware"
    assert (body["priority"], body["urgency"], body["impact"]) == ("URGENT", "LOW", "ONBUSINESS")
    assert body["ccEmailSet"] == ["a@acme.com", "b@acme.com"]
    assert body["locationName"] == "Pune"
    assert body["customFieldValueDetails"] == {"36": {"type": 2, "integerValue": 4}}
    assert body["attachmentsRefNames"] == ["f1.png", "f2.pdf"]


@pytest.mark.parametrize(("impact", "expected"), [("low", "ONUSER"), ("medium", "ONDEPARTMENT")])
def test_console_impact_maps_to_motadata_impact_unless_extra_overrides(impact, expected):
    provider = MotadataProvider(unsaved_account())
    assert provider.build_create(unsaved_ticket(impact=impact)).json["impact"] == expected
    override = unsaved_ticket(impact=impact, extra={"impact": "LOW"})
    assert provider.build_create(override).json["impact"] == "LOW"


def test_account_settings_fill_category_and_location_the_ticket_leaves_blank():
    account = unsaved_account(settings={"category_name": "Network", "location_name": "Remote"})
    body = MotadataProvider(account).build_create(unsaved_ticket(extra={})).json
    assert (body["categoryName"], body["locationName"]) == ("Network", "Remote")
    bare = unsaved_account(settings={})
    assert MotadataProvider(bare).build_create(unsaved_ticket(extra={})).json["categoryName"] == "Incident"


def test_a_ticket_without_requester_email_is_refused_before_anything_is_sent():
    with pytest.raises(ProviderValidationError) as raised:
        MotadataProvider(unsaved_account()).build_create(unsaved_ticket(requester_email=""))
    assert raised.value.field_errors == {"requester_email": ["Motadata needs a requester email"]}
    assert MotadataProvider.validate_ticket({"title": "x", "requester_email": " "}) == {
        "requester_email": ["Motadata needs a requester email"]
    }
    assert MotadataProvider.validate_ticket({"title": "x", "requester_email": "tim@acme.com"}) == {}


@pytest.mark.parametrize(
    ("status", "remote"),
    [
        ("new", "Open"),
        ("in_progress", "In Progress"),
        ("on_hold", "Pending"),
        ("resolved", "Resolved"),
        ("cancelled", "Closed"),
    ],
)
def test_update_posts_the_full_state_with_the_mapped_status(status, remote):
    ticket = unsaved_ticket(remote_id="7", status=status, extra={"attachments_ref_names": ["f1.png"]})
    request = MotadataProvider(unsaved_account()).build_update(ticket)
    assert (request.method, request.path) == ("POST", "/api/v1/incident/7")
    assert request.json["status"] == remote
    assert request.json["subject"] == "Need a new keyboard"
    assert request.json["tags"] == ["mouse"]
    assert "attachmentsRefNames" not in request.json  # sent with the create only


def test_every_console_status_has_a_motadata_status():
    assert set(MotadataProvider.default_status_map["outbound"]) == set(Status.values)


def test_replies_are_unsupported_with_a_reason_an_agent_understands():
    provider = MotadataProvider(unsaved_account())
    assert not provider.supports("reply")
    with pytest.raises(ProviderConfigurationError, match="no comment or reply endpoint"):
        provider.reply(unsaved_ticket(remote_id="7"), "hello")


# --- pure hooks: parsing --------------------------------------------------------------------
def test_seed_success_envelope_gives_id_number_and_url():
    ref = MotadataProvider(unsaved_account()).parse_create(seed_response(), unsaved_ticket())
    assert (ref.remote_id, ref.remote_number) == ("2", "2")
    assert ref.remote_url == "https://desk.example.com/t/request/2"


def test_fetch_reads_the_raw_status_and_fields():
    provider = MotadataProvider(unsaved_account())
    ticket = unsaved_ticket(remote_id="2")
    assert provider.build_fetch([ticket]).path == "/api/v1/incident/2"
    data = {
        "id": 2,
        "subject": "Need a new keyboard",
        "description": "d",
        "status": "Open",
        "priority": "LOW",
        "urgency": "LOW",
        "impact": "ONUSER",
        "tags": ["mouse"],
        "requesterEmail": "tim@acme.com",
    }
    [state] = provider.parse_fetch(data, [ticket])
    assert state == RemoteState(
        "2",
        "Open",
        fields={
            "subject": "Need a new keyboard",
            "description": "d",
            "priority": "LOW",
            "urgency": "LOW",
            "impact": "ONUSER",
            "tags": ["mouse"],
        },
    )
    assert provider.console_status_for(state.remote_status) == "open"


def test_token_request_is_the_documented_password_grant_and_refresh():
    provider = MotadataProvider(unsaved_account())
    request = provider.build_token_request()
    assert (request.method, request.path) == ("POST", "/api/oauth/token")
    basic = base64.b64encode(b"cid-123456:csecret-SECRET").decode()
    assert request.headers["Authorization"] == f"Basic {basic}"
    assert request.form == {"grant_type": "password", "username": "tim@acme.com", "password": "pw-SECRET-1"}
    refresh = provider.build_token_request("rt-1")
    assert refresh.form == {"grant_type": "refresh_token", "refresh_token": "rt-1"}
    assert refresh.headers["Authorization"] == f"Basic {basic}"
    token = provider.parse_token(
        {
            "access_token": "a",
            "token_type": "bearer",
            "refresh_token": "r",
            "expires_in": 7199,
            "scope": "other-api-scope",
        }
    )
    assert (token.access_token, token.refresh_token, token.expires_in) == ("a", "r", 7199)


def test_a_pasted_token_is_used_only_without_a_complete_grant():
    assert MotadataProvider(unsaved_account({"access_token": PASTED})).static_token() == PASTED
    both = unsaved_account({**GRANT, "access_token": PASTED})
    assert MotadataProvider(both).static_token() == ""  # the grant can renew its tokens
    with pytest.raises(ProviderConfigurationError, match="either an access token or client ID"):
        MotadataProvider(unsaved_account({"client_id": "x"})).build_token_request()


def test_credentials_must_be_a_token_or_all_four_grant_fields():
    assert MotadataProvider.validate_credentials({"access_token": PASTED}) == {}
    assert MotadataProvider.validate_credentials(GRANT) == {}
    partial = MotadataProvider.validate_credentials({"client_id": "c", "username": "u"})
    assert set(partial) == {"client_secret", "password"}
    empty = MotadataProvider.validate_credentials({})
    assert "access token" in empty["access_token"] and set(empty) == {*GRANT, "access_token"}


@pytest.mark.parametrize(
    ("body", "error", "field"),
    [
        ({"returnCode": "FAIL", "userMessage": "Subject is required."}, ProviderValidationError, "title"),
        (
            {"returnCode": "FAIL", "userMessage": "Requester Email is required."},
            ProviderValidationError,
            "requester_email",
        ),
        (
            {"returnCode": "FAIL", "userMessage": "Location 'Mumbai' does not exist."},
            ProviderValidationError,
            "location_name",
        ),
        (
            {"returnCode": "FAIL", "userMessage": "Custom field '99' does not exist."},
            ProviderValidationError,
            "custom_fields",
        ),
        ({"returnCode": "FAIL", "userMessage": "Incident 9 not found."}, ProviderNotFoundError, None),
        ({"returnCode": "FAIL", "userMessage": "Access denied for this user."}, ProviderAuthError, None),
        ({"returnCode": "FAIL", "userMessage": None}, ProviderValidationError, None),
    ],
)
def test_http_200_failure_envelopes_are_errors_with_motadatas_message(body, error, field):
    with pytest.raises(error) as raised:
        MotadataProvider(unsaved_account()).check_body({"status": 1, "id": None, **body})
    assert raised.value.message == (body["userMessage"] or "Motadata answered FAIL.")
    if field:
        assert raised.value.field_errors == {field: [body["userMessage"]]}


def test_the_success_envelope_and_token_answers_pass_the_body_check():
    provider = MotadataProvider(unsaved_account())
    provider.check_body(seed_response())
    provider.check_body({"access_token": "a", "token_type": "bearer"})


# --- the extra form -------------------------------------------------------------------------
def test_extra_form_accepts_and_normalises_good_input():
    form = MotadataTicketForm(
        data={
            "impact": "onuser",
            "urgency": "high",
            "cc_emails": "a@acme.com, b@acme.com",
            "custom_fields": seed_custom_fields(),
            "attachments_ref_names": "f1.png,f2.pdf",
        }
    )
    assert form.is_valid(), form.errors
    assert form.cleaned_data["impact"] == "ONUSER"
    assert form.cleaned_data["urgency"] == "HIGH"
    assert form.cleaned_data["cc_emails"] == ["a@acme.com", "b@acme.com"]
    assert form.cleaned_data["custom_fields"] == {
        "1": {"type": 1, "stringValue": "Open"},
        "35": {"type": 1, "stringValue": None},
    }
    assert form.cleaned_data["attachments_ref_names"] == ["f1.png", "f2.pdf"]


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"impact": "HUGE"}, "impact", "Must be one of LOW, ONUSER, ONDEPARTMENT, ONBUSINESS."),
        ({"urgency": "ASAP"}, "urgency", "Must be one of LOW, MEDIUM, HIGH, URGENT."),
        ({"cc_emails": ["a@acme.com", "not-an-email"]}, "cc_emails", '"not-an-email" is not a valid email'),
        ({"attachments_ref_names": ["f1.png", 3]}, "attachments_ref_names", "Enter text values only."),
        ({"custom_fields": [1, 2]}, "custom_fields", "Enter a JSON object"),
        ({"custom_fields": {"abc": {"type": 1, "stringValue": "x"}}}, "custom_fields", "numeric id"),
        ({"custom_fields": {"5": {"type": 6, "x": 1}}}, "custom_fields", '"type" must be one of 1 (STRING)'),
        (
            {"custom_fields": {"5": {"type": 2, "stringValue": "4"}}},
            "custom_fields",
            'type 2 (INTEGER) takes exactly one "integerValue"',
        ),
        (
            {"custom_fields": {"5": {"type": 2, "integerValue": 2**40}}},
            "custom_fields",
            '"integerValue" must be a whole number',
        ),
        (
            {"custom_fields": {"5": {"type": 4, "booleanValue": "yes"}}},
            "custom_fields",
            '"booleanValue" must be true or false',
        ),
        (
            {"custom_fields": {"5": {"type": 7, "integerListValue": [1, "2"]}}},
            "custom_fields",
            "a list of whole numbers",
        ),
        ({"custom_fields": {"5": {"type": 3, "doubleValue": True}}}, "custom_fields", "must be a number"),
    ],
)
def test_extra_form_refuses_each_bad_input_on_its_field(data, field, message):
    form = MotadataTicketForm(data=data)
    assert not form.is_valid()
    assert message in " ".join(form.errors[field])


def test_custom_field_types_take_their_own_value_keys():
    ok = {
        "1": {"type": 1, "stringValue": "a"},
        "2": {"type": 2, "integerValue": 3},
        "3": {"type": 3, "doubleValue": 1.5},
        "4": {"type": 4, "booleanValue": False},
        "5": {"type": 5, "longValue": 2**40},
        "7": {"type": 7, "integerListValue": [1, 2]},
        "8": {"type": 8, "stringListValue": ["a"]},
        "10": {"type": 10, "bigStringValue": "long"},
    }
    assert custom_field_errors(ok) == []
    assert custom_field_errors(seed_custom_fields()) == []


# --- narrow HTTP classification (responses; a pasted token, so no token call) ----------------


@responses.activate
def test_an_error_envelope_with_http_400_keeps_the_field_it_names():
    responses.post(
        f"{BASE}/api/v1/incident",
        status=400,
        json={
            "returnCode": "FAIL",
            "status": 1,
            "userMessage": "Location 'Mars' does not exist.",
            "id": None,
        },
    )
    with pytest.raises(ProviderValidationError) as raised:
        MotadataProvider(unsaved_account({"access_token": PASTED})).create(unsaved_ticket())
    assert raised.value.field_errors == {"location_name": ["Location 'Mars' does not exist."]}
    assert raised.value.http_status == 400


@responses.activate
def test_a_refused_pasted_token_says_so_without_repeating_the_token():
    responses.post(
        f"{BASE}/api/v1/incident",
        status=401,
        json={"error": "invalid_token", "error_description": f"Access token expired: {PASTED}"},
    )
    with pytest.raises(ProviderAuthError) as raised:
        MotadataProvider(unsaved_account({"access_token": PASTED})).create(unsaved_ticket())
    assert "refused the pasted access token" in raised.value.message
    assert PASTED not in raised.value.message
    assert len(responses.calls) == 1  # a pasted token cannot be renewed: no second try


@responses.activate
def test_bad_user_credentials_at_the_token_endpoint_are_an_auth_error():
    responses.post(
        f"{BASE}/api/oauth/token",
        status=400,
        json={"error": "invalid_grant", "error_description": "Bad credentials"},
    )
    with pytest.raises(ProviderAuthError, match="Authentication failed: Bad credentials"):
        MotadataProvider(unsaved_account()).create(unsaved_ticket())
    sent = parse_qs(responses.calls[0].request.body)
    assert sent == {"grant_type": ["password"], "username": ["tim@acme.com"], "password": ["pw-SECRET-1"]}


# --- contract: the adapter against the sandbox over HTTP -------------------------------------
def sandbox_token(sandbox) -> str:
    """A token obtained outside the console, as an admin would before pasting it."""
    creds = sandbox.credentials["motadata"]
    response = requests.post(
        f"{sandbox.base_url('motadata')}/api/oauth/token",
        auth=(creds["client_id"], creds["client_secret"]),
        data={"grant_type": "password", "username": creds["username"], "password": creds["password"]},
        timeout=5,
    )
    response.raise_for_status()
    assert response.json()["expires_in"] == 7199
    return response.json()["access_token"]


@pytest.mark.django_db
def test_create_update_and_fetch_against_the_sandbox(sandbox, account_factory):
    exchanges = []
    account = account_factory("motadata")
    provider = MotadataProvider(account, on_exchange=exchanges.append)
    ticket = unsaved_ticket(
        account=account,
        impact="high",
        extra={
            "location_name": "Ahmedabad",
            "cc_emails": ["ops@acme.com"],
            "custom_fields": {"36": {"type": 2, "integerValue": 3}},
        },
    )
    ref = provider.create(ticket)
    assert ref.remote_url == f"{account.base_url}/t/request/{ref.remote_id}"
    [incident] = sandbox.state("motadata")["incidents"]
    assert (incident["subject"], incident["status"], incident["impact"]) == (
        "Need a new keyboard",
        "Open",
        "ONBUSINESS",
    )
    assert "[Ticket Console TC-000042]" in incident["description"]
    assert incident["customFieldValueDetails"] == {"36": {"type": 2, "integerValue": 3}}

    ticket.remote_id, ticket.status, ticket.priority = ref.remote_id, "resolved", "urgent"
    provider.update(ticket)
    [state] = provider.fetch([ticket])
    assert (state.remote_id, state.remote_status) == (ref.remote_id, "Resolved")
    assert state.fields["priority"] == "URGENT"
    assert provider.console_status_for(state.remote_status) == "resolved"
    assert sandbox.state("motadata")["tokens_issued"] == 1  # one token served every call

    # Nothing secret in what the console records: credentials, Basic/Bearer headers, tokens.
    recorded = json.dumps([vars(e) for e in exchanges], default=str)
    tokens = AccessToken.objects.get(account=account).secret.reveal()
    secrets = [*sandbox.credentials["motadata"].values(), tokens["access_token"], tokens["refresh_token"]]
    assert [s for s in secrets if s in recorded] == []
    assert "Bearer " not in recorded and "Basic " not in recorded
    assert '"access_token": "[redacted]"' in exchanges[0].response_body


@pytest.mark.django_db
def test_uploaded_files_are_attached_by_their_ref_names(sandbox, account_factory):
    provider = MotadataProvider(account_factory("motadata"))
    ref_name = provider.upload_attachment("screen.png", b"\x89PNG fake", "image/png")
    [stored] = sandbox.state("motadata")["files"]
    assert (stored["refFileName"], stored["realName"], stored["size"]) == (ref_name, "screen.png", 9)
    provider.create(unsaved_ticket(extra={"attachments_ref_names": [ref_name]}))
    assert sandbox.state("motadata")["incidents"][0]["attachmentsRefNames"] == [ref_name]


@pytest.mark.django_db
def test_custom_field_list_and_connection_test(sandbox, account_factory):
    provider = MotadataProvider(account_factory("motadata"))
    fields = provider.custom_fields()
    assert {"id": 35, "valueTypeName": "STRING"}.items() <= fields[1].items()
    assert "Connected" in provider.test_connection()
    with pytest.raises(ProviderNotFoundError, match="Module 'nope' not found"):
        provider.custom_fields("nope")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("wrong", "message"),
    [("client_secret", "Bad client credentials"), ("password", "Bad credentials")],
)
def test_wrong_credentials_are_an_auth_error_with_motadatas_message(sandbox, account_factory, wrong, message):
    creds = {**sandbox.credentials["motadata"], wrong: "not-it"}
    provider = MotadataProvider(account_factory("motadata", credentials=creds))
    with pytest.raises(ProviderAuthError, match=f"Authentication failed: {message}"):
        provider.create(unsaved_ticket())
    with pytest.raises(ProviderAuthError):
        provider.test_connection()
    assert sandbox.state("motadata")["incidents"] == []


@pytest.mark.django_db
def test_expired_token_costs_exactly_one_new_grant(sandbox, account_factory):
    provider = MotadataProvider(account_factory("motadata"))
    ref = provider.create(unsaved_ticket())
    sandbox.control("expire-tokens", {})
    ticket = unsaved_ticket(remote_id=ref.remote_id, status="in_progress")
    provider.update(ticket)
    MotadataProvider(provider.account).update(ticket)  # another worker: uses the shared new token
    state = sandbox.state("motadata")
    assert state["tokens_issued"] == 2
    assert state["grants"] == {"password": 2, "refresh_token": 0}
    assert state["incidents"][0]["status"] == "In Progress"


@pytest.mark.django_db
def test_a_token_near_expiry_is_renewed_with_the_refresh_grant(sandbox, account_factory):
    account = account_factory("motadata")
    MotadataProvider(account).create(unsaved_ticket())
    AccessToken.objects.filter(account=account).update(expires_at=timezone.now() - timedelta(seconds=1))
    MotadataProvider(account).create(unsaved_ticket(title="Second"))
    assert sandbox.state("motadata")["grants"] == {"password": 1, "refresh_token": 1}


@pytest.mark.django_db
def test_a_pasted_token_works_until_it_expires(sandbox, account_factory):
    token = sandbox_token(sandbox)
    provider = MotadataProvider(account_factory("motadata", credentials={"access_token": token}))
    provider.create(unsaved_ticket())
    assert len(sandbox.state("motadata")["incidents"]) == 1
    sandbox.control("expire-tokens", {})
    with pytest.raises(ProviderAuthError, match="refused the pasted access token") as raised:
        provider.create(unsaved_ticket())
    assert token not in raised.value.message  # Motadata echoes the token; we never repeat it
    assert sandbox.state("motadata")["tokens_issued"] == 1  # nothing the console could renew


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"title": "  "}, "title", "Subject is required."),
        ({"extra": {"location_name": "Mumbai"}}, "location_name", "Location 'Mumbai' does not exist."),
        (
            {"extra": {"attachments_ref_names": ["never-uploaded.pdf"]}},
            "attachments_ref_names",
            "Attachment 'never-uploaded.pdf' was not uploaded",
        ),
        (
            {"extra": {"custom_fields": {"99": {"type": 1, "stringValue": "x"}}}},
            "custom_fields",
            "Custom field '99' does not exist.",
        ),
        (
            {"extra": {"custom_fields": {"36": {"type": 1, "stringValue": "x"}}}},
            "custom_fields",
            "Custom field '36' (Floor) is of type 2 (INTEGER).",
        ),
        ({"extra": {"impact": "HUGE"}}, "impact", "Invalid impact 'HUGE'"),
        ({"extra": {"cc_emails": "nobody"}}, "cc_emails", "invalid email address: 'nobody'"),
    ],
)
def test_motadata_refusals_are_validation_errors_on_the_right_field(
    sandbox, account_factory, changes, field, message
):
    provider = MotadataProvider(account_factory("motadata"))
    with pytest.raises(ProviderValidationError, match=re.escape(message)) as raised:
        provider.create(unsaved_ticket(**changes))
    assert list(raised.value.field_errors) == [field]
    assert sandbox.state("motadata")["incidents"] == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("drop", "field", "message"),
    [
        ("requesterEmail", "requester_email", "Requester Email is required."),
        ("categoryName", "category_name", "Category Name is required."),
    ],
)
def test_required_fields_are_enforced_by_the_sandbox_too(sandbox, account_factory, drop, field, message):
    provider = MotadataProvider(account_factory("motadata"))
    body = provider.build_create(unsaved_ticket()).json
    body.pop(drop)
    with pytest.raises(ProviderValidationError, match=re.escape(message)) as raised:
        provider.call(ApiRequest("POST", provider.INCIDENTS_PATH, json=body))
    assert raised.value.field_errors == {field: [message]}


@pytest.mark.django_db
def test_a_body_that_is_not_json_is_refused(sandbox, account_factory):
    provider = MotadataProvider(account_factory("motadata"))
    with pytest.raises(ProviderValidationError, match="not supported") as raised:
        provider.call(ApiRequest("POST", provider.INCIDENTS_PATH, form={"subject": "x"}))
    assert raised.value.http_status == 415


@pytest.mark.django_db
def test_an_unknown_status_and_an_unknown_incident_are_refused(sandbox, account_factory):
    account = account_factory("motadata")
    provider = MotadataProvider(account)
    ref = provider.create(unsaved_ticket())
    account.status_map = {"outbound": {**MotadataProvider.default_status_map["outbound"], "closed": "Done"}}
    with pytest.raises(ProviderValidationError, match="Invalid status 'Done'") as raised:
        provider.update(unsaved_ticket(remote_id=ref.remote_id, status="closed"))
    assert list(raised.value.field_errors) == ["status"]
    missing = unsaved_ticket(remote_id="4040")
    with pytest.raises(ProviderNotFoundError, match="Incident 4040 not found."):
        provider.fetch([missing])
    with pytest.raises(ProviderNotFoundError):
        provider.update(missing)


def ticket_input(*, files: list, **fields) -> SimpleNamespace:
    """A ticket as adapters see it (providers/ticket_input.py), with files: no model, no row."""
    model = unsaved_ticket(**fields)
    values = {f.name: getattr(model, f.name) for f in Ticket._meta.concrete_fields if f.name != "account"}
    return SimpleNamespace(**values, pk=1, attachments=SimpleNamespace(all=lambda: list(files)))


class FileOnTicket:
    """A ticket-shaped input's attachment (providers/ticket_input.py), no database row."""

    def __init__(self, name: str, content: bytes) -> None:
        self.name, self.content_type, self.remote_ref = name, "application/pdf", ""
        self.file = SimpleUploadedFile(name, content)


@pytest.mark.django_db
def test_files_are_uploaded_once_and_their_refs_handed_to_the_console(sandbox, account_factory):
    uploads = []
    provider = MotadataProvider(
        account_factory("motadata"), on_upload=lambda attachment, ref: uploads.append((attachment.name, ref))
    )
    invoice = FileOnTicket("invoice.pdf", b"%PDF-1.4 invoice")
    ticket = ticket_input(files=[invoice])

    provider.create(ticket)
    provider.create(ticket)  # a create resent after its answer was lost

    state = sandbox.state("motadata")
    [stored] = state["files"]  # uploaded once: the second create reused the ref
    assert uploads == [("invoice.pdf", stored["refFileName"])] and invoice.remote_ref == stored["refFileName"]
    assert [i["attachmentsRefNames"] for i in state["incidents"]] == [[stored["refFileName"]]] * 2


@pytest.mark.django_db
def test_a_create_refused_before_sending_uploads_nothing(sandbox, account_factory):
    provider = MotadataProvider(account_factory("motadata"))
    ticket = ticket_input(files=[FileOnTicket("invoice.pdf", b"%PDF")], requester_email="")
    with pytest.raises(ProviderValidationError):
        provider.create(ticket)
    assert sandbox.state("motadata")["files"] == []
