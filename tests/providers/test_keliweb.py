"""Keliweb (WHMCS-backed): payload builders and parsers on the seed (002) and WHMCS's own
examples, error classification, then the adapter against the sandbox over HTTP (Passport
tokens that expire and refresh, multipart form fields, HTTP-200 error bodies)."""

import base64
import json
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import requests
import responses
from django.utils import timezone

from providers.errors import (
    ProviderAuthError,
    ProviderConfigurationError,
    ProviderNotFoundError,
    ProviderResponseError,
    ProviderValidationError,
)
from providers.keliweb import (
    KeliwebProvider,
    KeliwebTicketForm,
    encode_attachments,
    encode_customfields,
    php_serialize,
)
from providers.models import AccessToken, ProviderAccount
from providers.sandbox.keliweb import php_unserialize_flat
from tickets.models import Ticket

SEEDS = Path(__file__).resolve().parent / "seeds"  # the vendors' own excerpts
BASE = "https://apiv2.keliweb.it"
CREDENTIALS = {
    "client_id": "7",
    "client_secret": "cs-SECRET-123456",
    "username": "ops@example.it",
    "password": "pw-SECRET-654321",
}
TOKEN_ANSWER = {
    "token_type": "Bearer",
    "expires_in": 3600,
    "access_token": "at-SECRET-000111",
    "refresh_token": "rt-SECRET-222333",
}

# WHMCS's documented GetTicket example response (developers.whmcs.com, api-reference/getticket),
# the shape Keliweb's get-ticket passes through; the seed has no get-ticket excerpt.
WHMCS_GET_TICKET_EXAMPLE = {
    "result": "success",
    "ticketid": "1",
    "tid": "516757",
    "c": "KPqH7yG3",
    "deptid": "1",
    "deptname": "Sample Support Department",
    "userid": "1",
    "contactid": "0",
    "name": "Cynthia Reilly",
    "email": "testuser@whmcs.com",
    "cc": "",
    "date": "2016-01-01 06:26:29",
    "subject": "This is a sample ticket",
    "status": "Closed",
    "priority": "Medium",
    "admin": "",
    "lastreply": "2016-01-01 06:30:16",
    "flag": "0",
    "service": "",
    "replies": {
        "reply": [
            {
                "replyid": "0",
                "userid": "1",
                "contactid": "0",
                "name": "Cynthia Reilly",
                "email": "testuser@whmcs.com",
                "date": "2016-01-01 06:26:29",
                "message": "Hey, \r\n\r\nThis is the first ticket message!\r\n\r\nThanks\r\n\r\nCynthia",
                "attachment": "",
                "admin": "",
            },
            {
                "replyid": "1",
                "userid": "1",
                "contactid": "0",
                "name": "",
                "email": "",
                "date": "2016-01-01 06:27:01",
                "message": (
                    "Hello, \r\n\r\nThis is the first ticket reply by an admin user!"
                    "\r\n\r\nThanks\r\n\r\nDemo Admin"
                ),
                "attachment": "",
                "admin": "Demo Admin",
                "rating": "0",
            },
            {
                "replyid": "2",
                "userid": "1",
                "contactid": "0",
                "name": "",
                "email": "",
                "date": "2016-01-01 06:30:16",
                "message": "Hey, \r\n\r\nThis is a second reply!\r\n\r\nThanks\r\n\r\nCynthia",
                "attachment": "",
                "admin": "",
                "rating": "0",
            },
        ]
    },
    "notes": {
        "note": [
            {
                "noteid": "1",
                "date": "2016-01-01 06:26:42",
                "message": "This is a ticket note",
                "admin": "Demo Admin",
            },
        ]
    },
}


def seed_text() -> str:
    return (SEEDS / "002_67e045ed39e8268d.txt").read_text()


def seed_response() -> dict:
    """The open-ticket success body exactly as seed 002 shows it."""
    text = seed_text()
    start = text.index("{", text.index("Example Response (JSON payload)"))
    return json.loads(text[start : text.index("}", start) + 1])


def seed_jquery_fields() -> dict[str, str]:
    """The FormData of seed 002's jQuery example, exactly (`markdown` true, attachments "[]")."""
    return dict(re.findall(r'form\.append\("(\w+)", "?(.*?)"?\);', seed_text()))


def unsaved_account(**kwargs) -> ProviderAccount:
    defaults = {"name": "k", "kind": "keliweb", "base_url": BASE, "timeout": 2, "settings": {"deptid": 1}}
    account = ProviderAccount(**{**defaults, **kwargs})  # no pk: tokens are not cached in the DB
    account.set_credentials(CREDENTIALS)
    return account


def unsaved_ticket(**kwargs) -> Ticket:
    defaults = {
        "reference": "TC-000042",
        "title": "This is a sample ticket",
        "description": "This is a **sample** ticket message",
        "requester_email": "anna.verdi@example.it",
        "requester_name": "Anna Verdi",
        "priority": "medium",
        "status": "new",
    }
    return Ticket(**{**defaults, **kwargs})


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- pure hooks: token requests ----------------------------------------------------------------
def test_token_request_is_a_password_grant_of_form_fields_on_the_api_host():
    request = KeliwebProvider(unsaved_account()).build_token_request()
    assert (request.method, request.path, request.multipart) == ("POST", "/oauth/token", False)
    assert request.form == {
        "grant_type": "password",
        "client_id": "7",
        "client_secret": "cs-SECRET-123456",
        "username": "ops@example.it",
        "password": "pw-SECRET-654321",
    }


def test_refresh_request_sends_the_refresh_token_and_the_client_not_the_password():
    request = KeliwebProvider(unsaved_account()).build_token_request("rt-SECRET-222333")
    assert request.form == {
        "grant_type": "refresh_token",
        "refresh_token": "rt-SECRET-222333",
        "client_id": "7",
        "client_secret": "cs-SECRET-123456",
    }


def test_token_answer_is_read_with_its_lifetime():
    token = KeliwebProvider(unsaved_account()).parse_token(TOKEN_ANSWER)
    assert (token.access_token, token.refresh_token, token.expires_in) == (
        "at-SECRET-000111",
        "rt-SECRET-222333",
        3600.0,
    )


def test_a_missing_credential_names_the_credential():
    account = unsaved_account()
    account.set_credentials({**CREDENTIALS, "password": ""})
    with pytest.raises(ProviderConfigurationError, match="'password' credential"):
        KeliwebProvider(account).build_token_request()


# --- pure hooks: open-ticket --------------------------------------------------------------------
def test_create_sends_the_seed_fields_as_multipart_with_the_ajax_header():
    request = KeliwebProvider(unsaved_account()).build_create(unsaved_ticket(extra={"markdown": True}))
    assert (request.method, request.path, request.multipart) == ("POST", "/api/v2/keliweb/open-ticket", True)
    assert request.headers["X-Requested-With"] == "XMLHttpRequest"
    assert request.form == {
        "deptid": 1,
        "subject": "This is a sample ticket",
        "message": "This is a **sample** ticket message\n\n[Ticket Console TC-000042]",
        "name": "Anna Verdi",
        "email": "anna.verdi@example.it",
        "priority": "Medium",
        "markdown": True,
    }


def test_create_for_a_client_sends_client_and_contact_and_no_name_or_email():
    ticket = unsaved_ticket(
        priority="urgent",
        extra={"deptid": 2, "clientid": 1, "contactid": 5, "serviceid": 10},
    )
    form = KeliwebProvider(unsaved_account()).build_create(ticket).form
    assert form["deptid"] == 2 and form["clientid"] == 1 and form["contactid"] == 5
    assert form["serviceid"] == 10 and "domainid" not in form
    assert form["priority"] == "High"
    assert "name" not in form and "email" not in form


def test_a_name_is_made_from_the_email_when_the_requester_has_none():
    form = KeliwebProvider(unsaved_account()).build_create(unsaved_ticket(requester_name="")).form
    assert (form["name"], form["email"]) == ("anna.verdi", "anna.verdi@example.it")


def test_account_settings_fill_department_client_and_markdown():
    account = unsaved_account(settings={"deptid": "2", "clientid": 1, "markdown": False})
    form = KeliwebProvider(account).build_create(unsaved_ticket()).form
    assert (form["deptid"], form["clientid"], form["markdown"]) == (2, 1, False)


@pytest.mark.parametrize("settings", [{}, {"deptid": ""}, {"deptid": "support"}, {"deptid": 0}])
def test_create_without_a_department_is_a_configuration_error_naming_deptid(settings):
    with pytest.raises(ProviderConfigurationError, match="deptid") as raised:
        KeliwebProvider(unsaved_account(settings=settings)).build_create(unsaved_ticket())
    assert "'k'" in str(raised.value)


def test_attachments_are_base64_of_the_seeds_json_array():
    encoded = encode_attachments([("sample_text_file.txt", b"This is a sample text file contents")])
    assert json.loads(base64.b64decode(encoded)) == [
        {"name": "sample_text_file.txt", "data": b64(b"This is a sample text file contents")}
    ]
    ticket = unsaved_ticket(extra={"attachments": [{"name": "log.txt", "data_base64": b64(b"boom\n")}]})
    form = KeliwebProvider(unsaved_account()).build_create(ticket).form
    assert form["attachments"] == encode_attachments([("log.txt", b"boom\n")])


def test_customfields_are_base64_of_a_php_serialized_array():
    # WHMCS's own example: base64_encode(serialize(array("1"=>"Google")))
    assert php_serialize({"1": "Google"}) == 'a:1:{i:1;s:6:"Google";}'
    assert php_serialize({"12": "Caffè", "name": 3, "7": True}) == (
        'a:3:{i:12;s:6:"Caffè";s:4:"name";i:3;i:7;b:1;}'  # lengths count UTF-8 bytes
    )
    ticket = unsaved_ticket(extra={"customfields": {"1": "Google"}})
    form = KeliwebProvider(unsaved_account()).build_create(ticket).form
    assert base64.b64decode(form["customfields"]) == b'a:1:{i:1;s:6:"Google";}'
    assert php_unserialize_flat(base64.b64decode(encode_customfields({"12": "Caffè"}))) == {12: "Caffè"}


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ({"customfields": ["Google"]}, "customfields", "Custom fields must be a JSON object"),
        ({"customfields": {"1": ["a", "b"]}}, "customfields", "Custom fields must be a JSON object"),
        ({"attachments": [{"name": "a.txt", "data_base64": "%%%"}]}, "attachments", "not valid base64"),
    ],
)
def test_extra_fields_saved_around_the_form_are_refused_before_sending(extra, field, message):
    with pytest.raises(ProviderValidationError, match=message) as raised:
        KeliwebProvider(unsaved_account()).build_create(unsaved_ticket(extra=extra))
    assert list(raised.value.field_errors) == [field]


def test_seed_success_body_gives_id_number_client_area_url_and_open_status():
    ref = KeliwebProvider(unsaved_account()).parse_create(seed_response(), unsaved_ticket())
    assert ref.remote_id == "1"
    assert ref.remote_number == "516757"
    assert ref.remote_url == "https://apiv2.keliweb.it/viewticket.php?tid=516757&c=KPqH7yG3"
    assert ref.remote_status == "Open"


def test_client_area_url_setting_moves_the_ticket_link():
    account = unsaved_account(
        settings={"deptid": 1, "client_area_url": "https://www.keliweb.it/area-clienti/"}
    )
    ref = KeliwebProvider(account).parse_create(seed_response(), unsaved_ticket())
    assert ref.remote_url == "https://www.keliweb.it/area-clienti/viewticket.php?tid=516757&c=KPqH7yG3"


def test_a_success_without_a_ticket_id_is_a_response_error():
    with pytest.raises(ProviderResponseError, match="without a ticket id"):
        KeliwebProvider(unsaved_account()).parse_create({"result": "success"}, unsaved_ticket())


# --- pure hooks: get-ticket, reply, no update ---------------------------------------------------------
def test_fetch_asks_get_ticket_for_one_ticket_id():
    provider = KeliwebProvider(unsaved_account())
    request = provider.build_fetch([unsaved_ticket(remote_id="1")])
    assert (request.path, request.form, request.multipart) == (
        "/api/v2/keliweb/get-ticket",
        {"ticketid": "1"},
        True,
    )
    assert provider.fetch_batch_size == 1


def test_whmcs_get_ticket_example_gives_status_and_the_last_reply():
    provider = KeliwebProvider(unsaved_account())
    [state] = provider.parse_fetch(WHMCS_GET_TICKET_EXAMPLE, [unsaved_ticket(remote_id="1")])
    assert (state.remote_id, state.remote_status) == ("1", "Closed")
    assert provider.console_status_for(state.remote_status) == "closed"
    assert state.fields["tid"] == "516757" and state.fields["deptname"] == "Sample Support Department"
    assert state.fields["reply_count"] == 3
    assert state.fields["last_reply"]["date"] == "2016-01-01 06:30:16"
    assert state.fields["last_reply"]["message"].startswith("Hey, \r\n\r\nThis is a second reply!")
    assert state.fields["last_reply"]["by_staff"] is False


def test_the_conversation_read_back_leaves_out_the_opening_message_and_names_who_wrote_each():
    provider = KeliwebProvider(unsaved_account())
    [state] = provider.parse_fetch(WHMCS_GET_TICKET_EXAMPLE, [unsaved_ticket(remote_id="1")])
    assert [(r.remote_id, r.author, r.by_provider_staff, r.date) for r in state.replies] == [
        ("1", "Demo Admin", True, "2016-01-01 06:27:01"),
        ("2", "", False, "2016-01-01 06:30:16"),
    ]
    assert state.replies[0].body.startswith("Hello, \r\n\r\nThis is the first ticket reply by an admin")


@pytest.mark.parametrize(
    ("remote", "console"),
    [
        ("Open", "open"),
        ("Answered", "pending"),
        ("Customer-Reply", "open"),
        ("Closed", "closed"),
        ("On Hold", "on_hold"),
        ("In Progress", "in_progress"),
    ],
)
def test_every_whmcs_status_maps_to_a_console_status(remote, console):
    assert KeliwebProvider(unsaved_account()).console_status_for(remote) == console


def test_reply_sends_ticket_id_message_and_the_requester():
    ticket = unsaved_ticket(remote_id="1", extra={"markdown": True})
    request = KeliwebProvider(unsaved_account()).build_reply(ticket, "Still **down**.")
    assert request.path == "/api/v2/keliweb/add-ticket-reply"
    assert request.form == {
        "ticketid": "1",
        "message": "Still **down**.",
        "name": "Anna Verdi",
        "email": "anna.verdi@example.it",
        "markdown": True,
    }


def test_update_is_refused_with_a_reason_an_agent_understands():
    provider = KeliwebProvider(unsaved_account())
    assert not KeliwebProvider.supports("update")
    assert {"create", "fetch", "reply", "test"} == set(KeliwebProvider.capabilities)
    with pytest.raises(ProviderConfigurationError, match="cannot update a ticket .* add a reply instead"):
        provider.update(unsaved_ticket(remote_id="1"))


def test_status_map_has_an_outbound_entry_for_every_console_status():
    from tickets.models import Status

    assert set(KeliwebProvider.default_status_map["outbound"]) == set(Status.values)


# --- error bodies (HTTP 200, WHMCS style) ------------------------------------------------------------
@pytest.mark.parametrize(
    ("message", "error", "fields"),
    [
        ("Department ID not found", ProviderValidationError, ["deptid"]),
        ("Subject is required", ProviderValidationError, ["title"]),
        ("Message is required", ProviderValidationError, ["description"]),
        ("Email Address Invalid", ProviderValidationError, ["requester_email"]),
        (
            "Name and email address are required if not a client",
            ProviderValidationError,
            ["requester_name", "requester_email"],
        ),
        ("Client ID Not Found", ProviderValidationError, ["clientid"]),
        ("Contact ID Not Found", ProviderValidationError, ["contactid"]),
        ("Service ID Not Found", ProviderValidationError, ["serviceid"]),
        ("Domain ID Not Found", ProviderValidationError, ["domainid"]),
        ("Service ID and Domain ID cannot both be supplied", ProviderValidationError, ["domainid"]),
        ("Unable to generate ticket number", ProviderValidationError, []),
        ("Ticket ID Not Found", ProviderNotFoundError, None),
        ("Ticket ID not found", ProviderNotFoundError, None),
        ("Authentication Failed", ProviderAuthError, None),
        ("Invalid IP 203.0.113.9", ProviderAuthError, None),
    ],
)
def test_http_200_error_bodies_are_errors_with_keliwebs_message(message, error, fields):
    with pytest.raises(error) as raised:
        KeliwebProvider(unsaved_account()).check_body({"result": "error", "message": message})
    assert raised.value.message == message
    if fields is not None:
        assert raised.value.field_errors == {field: [message] for field in fields}


def test_success_and_token_bodies_pass_the_body_check():
    provider = KeliwebProvider(unsaved_account())
    provider.check_body(seed_response())
    provider.check_body(TOKEN_ANSWER)
    provider.check_body(WHMCS_GET_TICKET_EXAMPLE)


# --- the extra form ----------------------------------------------------------------------------
def test_extra_form_accepts_a_full_valid_set():
    form = KeliwebTicketForm(
        data={
            "deptid": 2,
            "clientid": 1,
            "contactid": 5,
            "serviceid": 10,
            "markdown": True,
            "customfields": {"12": "Google"},
            "attachments": [{"name": "a.txt", "data_base64": b64(b"a")}],
        }
    )
    assert form.is_valid(), form.errors
    assert form.cleaned_data["deptid"] == 2 and form.cleaned_data["customfields"] == {"12": "Google"}


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"deptid": 0}, "deptid", "greater than or equal to 1"),
        ({"deptid": "support"}, "deptid", "whole number"),
        ({"contactid": 5}, "contactid", "give the client ID too"),
        ({"serviceid": 10, "domainid": 20}, "domainid", "Give a service or a domain, not both"),
        ({"customfields": ["Google"]}, "customfields", "JSON object of field ID: value"),
        ({"customfields": {"colour": "red"}}, "customfields", "JSON object of field ID: value"),
        ({"customfields": {"12": {"nested": 1}}}, "customfields", "JSON object of field ID: value"),
        ({"attachments": {"name": "a.txt"}}, "attachments", "must be a list"),
        ({"attachments": [{"data_base64": b64(b"a")}]}, "attachments", "needs a file name"),
        (
            {"attachments": [{"name": "a.txt", "data_base64": "not base64!"}]},
            "attachments",
            "'a.txt' is not valid base64",
        ),
    ],
)
def test_extra_form_refuses_bad_input_on_the_right_field(data, field, message):
    form = KeliwebTicketForm(data=data)
    assert not form.is_valid()
    assert message in " ".join(form.errors[field])


# --- narrow HTTP classification (responses) ------------------------------------------------------
def mock_token(status: int = 200, body: dict | None = None) -> None:
    responses.post(f"{BASE}/oauth/token", json=body or TOKEN_ANSWER, status=status)


@responses.activate
def test_api_calls_carry_the_bearer_token_and_the_ajax_header_as_multipart():
    mock_token()
    responses.post(f"{BASE}/api/v2/keliweb/open-ticket", json=seed_response())
    ref = KeliwebProvider(unsaved_account()).create(unsaved_ticket())
    token_call, api_call = responses.calls
    assert parse_qs(token_call.request.body)["grant_type"] == ["password"]
    assert api_call.request.headers["Authorization"] == "Bearer at-SECRET-000111"
    assert api_call.request.headers["X-Requested-With"] == "XMLHttpRequest"
    assert api_call.request.headers["Content-Type"].startswith("multipart/form-data")
    assert ref.remote_number == "516757"


@responses.activate
def test_a_401_from_the_api_fetches_one_new_token_then_reports_unauthenticated():
    mock_token()
    responses.post(f"{BASE}/api/v2/keliweb/get-ticket", json={"message": "Unauthenticated."}, status=401)
    with pytest.raises(ProviderAuthError, match=r"^Unauthenticated\.$"):
        KeliwebProvider(unsaved_account()).fetch([unsaved_ticket(remote_id="1")])
    assert [c.request.url.rsplit("/", 1)[-1] for c in responses.calls] == [
        "token",
        "get-ticket",
        "token",
        "get-ticket",
    ]


@responses.activate
@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (
            401,
            {"error": "invalid_client", "message": "Client authentication failed"},
            "Authentication failed: Client authentication failed",
        ),
        (
            400,
            {"error": "invalid_grant", "message": "The user credentials were incorrect."},
            "Authentication failed: The user credentials were incorrect.",
        ),
    ],
)
def test_refused_token_requests_are_auth_errors(status, body, message):
    mock_token(status, body)
    with pytest.raises(ProviderAuthError) as raised:
        KeliwebProvider(unsaved_account()).create(unsaved_ticket())
    assert raised.value.message == message
    assert len(responses.calls) == 1  # nothing was sent to the API


# --- contract: the adapter against the sandbox over HTTP ---------------------------------------------
def emulator(sandbox):
    return sandbox.server.emulators["keliweb"]


@pytest.mark.django_db
def test_create_fetch_and_reply_against_the_sandbox(sandbox, account_factory):
    provider = KeliwebProvider(account_factory("keliweb"))
    ticket = unsaved_ticket(
        priority="high",
        extra={
            "markdown": True,
            "customfields": {"12": "Caffè"},
            "attachments": [{"name": "trace.log", "data_base64": b64(b"line 1\nline 2\n")}],
        },
    )
    ref = provider.create(ticket)
    [stored] = sandbox.state("keliweb")["tickets"]
    assert ref.remote_id == str(stored["ticketid"]) and ref.remote_number == stored["tid"]
    assert len(stored["tid"]) == 6 and len(stored["c"]) == 8
    base = sandbox.base_url("keliweb")
    assert ref.remote_url == f"{base}/viewticket.php?tid={stored['tid']}&c={stored['c']}"
    assert (stored["deptname"], stored["subject"], stored["priority"]) == ("Support", ticket.title, "High")
    assert (stored["name"], stored["email"]) == ("Anna Verdi", "anna.verdi@example.it")
    assert stored["markdown"] is True
    assert stored["replies"][0]["message"].endswith("[Ticket Console TC-000042]")
    assert stored["customfields"] == {"12": "Caffè"}
    assert stored["attachments"] == [
        {"name": "trace.log", "size": 14, "data_base64": b64(b"line 1\nline 2\n")}
    ]

    ticket.remote_id = ref.remote_id
    [state] = provider.fetch([ticket])
    assert (state.remote_id, state.remote_status) == (ref.remote_id, "Open")
    assert provider.console_status_for(state.remote_status) == "open"

    sandbox.control("keliweb/staff-reply", {"ticketid": ref.remote_id, "message": "We are on it."})
    [state] = provider.fetch([ticket])
    assert provider.console_status_for(state.remote_status) == "pending"
    assert state.fields["last_reply"] == {
        "date": state.fields["lastreply"],
        "author": "Keliweb Support",
        "by_staff": True,
        "message": "We are on it.",
    }

    provider.reply(ticket, "Thanks, still failing since 09:00.")
    [state] = provider.fetch([ticket])
    assert state.remote_status == "Customer-Reply"
    assert state.fields["last_reply"]["message"] == "Thanks, still failing since 09:00."
    assert state.fields["reply_count"] == 3
    assert [(r.author, r.by_provider_staff, r.body) for r in state.replies] == [
        ("Keliweb Support", True, "We are on it."),
        ("Anna Verdi", False, "Thanks, still failing since 09:00."),
    ]
    assert sandbox.state("keliweb")["tokens_issued"] == 1  # one token served every call


@pytest.mark.django_db
def test_a_ticket_for_a_client_takes_the_clients_name_and_service(sandbox, account_factory):
    provider = KeliwebProvider(account_factory("keliweb"))
    provider.create(unsaved_ticket(requester_email="", extra={"clientid": 1, "contactid": 5, "domainid": 20}))
    [stored] = sandbox.state("keliweb")["tickets"]
    assert (stored["userid"], stored["contactid"], stored["service"]) == (1, 5, "D20")
    assert stored["email"] == "mario.rossi@example.it"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "message", "fields"),
    [
        ({"extra": {"deptid": 99}}, "Department ID not found", ["deptid"]),
        ({"title": "  "}, "Subject is required", ["title"]),
        ({"requester_email": "anna.verdi@"}, "Email Address Invalid", ["requester_email"]),
        (
            {"requester_email": "", "requester_name": ""},
            "Name and email address are required if not a client",
            ["requester_name", "requester_email"],
        ),
        ({"extra": {"clientid": 404}}, "Client ID Not Found", ["clientid"]),
        ({"extra": {"clientid": 1, "contactid": 6}}, "Contact ID Not Found", ["contactid"]),
        ({"extra": {"serviceid": 11}}, "Service ID Not Found", ["serviceid"]),
        ({"extra": {"domainid": 21}}, "Domain ID Not Found", ["domainid"]),
        (
            {"extra": {"serviceid": 10, "domainid": 20}},
            "Service ID and Domain ID cannot both be supplied",
            ["domainid"],
        ),
    ],
)
def test_keliweb_refusals_are_validation_errors_on_the_right_field(
    sandbox, account_factory, changes, message, fields
):
    provider = KeliwebProvider(account_factory("keliweb"))
    with pytest.raises(ProviderValidationError) as raised:
        provider.create(unsaved_ticket(**changes))
    assert raised.value.message == message
    assert raised.value.field_errors == {field: [message] for field in fields}
    assert sandbox.state("keliweb")["tickets"] == []


@pytest.mark.django_db
def test_an_empty_reply_is_refused_and_unknown_tickets_are_not_found(sandbox, account_factory):
    provider = KeliwebProvider(account_factory("keliweb"))
    ref = provider.create(unsaved_ticket())
    with pytest.raises(ProviderValidationError, match="Message is required"):
        provider.reply(unsaved_ticket(remote_id=ref.remote_id), "   ")
    with pytest.raises(ProviderNotFoundError, match="Ticket ID Not Found"):
        provider.fetch([unsaved_ticket(remote_id="999")])
    with pytest.raises(ProviderNotFoundError, match="Ticket ID not found"):
        provider.reply(unsaved_ticket(remote_id="999"), "Hello?")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        ("client_secret", "Authentication failed: Client authentication failed"),
        ("password", "Authentication failed: The user credentials were incorrect."),
    ],
)
def test_wrong_credentials_are_auth_errors_with_passports_message(sandbox, account_factory, wrong, message):
    credentials = {**sandbox.credentials["keliweb"], wrong: "not-the-right-one"}
    account = account_factory("keliweb", credentials=credentials)
    with pytest.raises(ProviderAuthError) as raised:
        KeliwebProvider(account).create(unsaved_ticket())
    assert raised.value.message == message
    assert sandbox.state("keliweb")["tickets"] == []


@pytest.mark.django_db
def test_an_expired_token_costs_exactly_one_new_password_grant(sandbox, account_factory):
    account = account_factory("keliweb")
    ref = KeliwebProvider(account).create(unsaved_ticket())
    sandbox.control("expire-tokens", {})
    # A new provider (like the next task) finds the token cached in the database.
    [state] = KeliwebProvider(account).fetch([unsaved_ticket(remote_id=ref.remote_id)])
    assert state.remote_status == "Open"
    remote = sandbox.state("keliweb")
    assert (remote["tokens_issued"], remote["password_grants"], remote["refresh_grants"]) == (2, 2, 0)


@pytest.mark.django_db
def test_a_token_near_its_expiry_is_renewed_with_the_refresh_token(sandbox, account_factory):
    account = account_factory("keliweb")
    KeliwebProvider(account).test_connection()
    AccessToken.objects.filter(account=account).update(expires_at=timezone.now() + timedelta(seconds=30))
    KeliwebProvider(account).create(unsaved_ticket())
    remote = sandbox.state("keliweb")
    assert (remote["password_grants"], remote["refresh_grants"]) == (1, 1)
    assert len(remote["tickets"]) == 1


@pytest.mark.django_db
def test_a_revoked_refresh_token_falls_back_to_a_password_grant(sandbox, account_factory):
    account = account_factory("keliweb")
    KeliwebProvider(account).test_connection()
    with emulator(sandbox).lock:
        emulator(sandbox).refresh_tokens.clear()
    AccessToken.objects.filter(account=account).update(expires_at=timezone.now() - timedelta(seconds=1))
    KeliwebProvider(account).create(unsaved_ticket())
    remote = sandbox.state("keliweb")
    assert (remote["password_grants"], remote["refresh_grants"], len(remote["tickets"])) == (2, 0, 1)


@pytest.mark.django_db
def test_connection_test_accepts_the_right_credentials_only(sandbox, account_factory):
    assert "accepted" in KeliwebProvider(account_factory("keliweb")).test_connection()
    wrong = {**sandbox.credentials["keliweb"], "username": "someone-else@example.it"}
    with pytest.raises(ProviderAuthError, match="user credentials were incorrect"):
        KeliwebProvider(account_factory("keliweb", name="wrong", credentials=wrong)).test_connection()


# --- the emulator itself: what the real API refuses ---------------------------------------------------
def token_for(sandbox) -> str:
    creds = sandbox.credentials["keliweb"]
    answer = requests.post(
        f"{sandbox.base_url('keliweb')}/oauth/token", data={"grant_type": "password", **creds}, timeout=5
    )
    assert answer.status_code == 200 and answer.json()["token_type"] == "Bearer"
    return answer.json()["access_token"]


def test_the_api_wants_the_ajax_header_and_a_live_bearer_token(sandbox):
    url = f"{sandbox.base_url('keliweb')}/api/v2/keliweb/get-ticket"
    token = token_for(sandbox)
    browser = requests.post(
        url,
        data={"ticketid": "1"},
        headers={"Authorization": f"Bearer {token}"},
        allow_redirects=False,
        timeout=5,
    )
    assert browser.status_code == 302 and browser.headers["Location"].endswith("/login")
    ajax = {"X-Requested-With": "XMLHttpRequest"}
    anonymous = requests.post(url, data={"ticketid": "1"}, headers=ajax, timeout=5)
    assert (anonymous.status_code, anonymous.json()) == (401, {"message": "Unauthenticated."})
    known = requests.post(
        url, data={"ticketid": "1"}, headers={**ajax, "Authorization": f"Bearer {token}"}, timeout=5
    )
    assert known.json() == {"result": "error", "message": "Ticket ID Not Found"}
    sandbox.control("expire-tokens", {})
    expired = requests.post(
        url, data={"ticketid": "1"}, headers={**ajax, "Authorization": f"Bearer {token}"}, timeout=5
    )
    assert expired.status_code == 401


def test_the_token_endpoint_wants_form_fields_and_a_known_grant(sandbox):
    url = f"{sandbox.base_url('keliweb')}/oauth/token"
    creds = sandbox.credentials["keliweb"]
    as_json = requests.post(url, json={"grant_type": "password", **creds}, timeout=5)
    assert (as_json.status_code, as_json.json()["error"]) == (400, "unsupported_grant_type")
    no_user = requests.post(
        url,
        data={
            "grant_type": "password",
            "client_id": creds["client_id"],
            "client_secret": creds["client_secret"],
        },
        timeout=5,
    )
    assert (no_user.status_code, no_user.json()["hint"]) == (400, "Check the `username` parameter")
    refresh = {**creds, "grant_type": "refresh_token", "refresh_token": "def50200x"}
    bad_refresh = requests.post(url, data=refresh, timeout=5)
    assert (bad_refresh.status_code, bad_refresh.json()["error"]) == (401, "invalid_grant")


def test_the_seeds_own_jquery_example_with_a_literal_empty_attachments_array_is_accepted(sandbox):
    assert seed_jquery_fields() == {
        "deptid": "1",
        "subject": "This is a sample ticket",
        "message": "This is a **sample** ticket message",
        "clientid": "1",
        "priority": "Medium",
        "markdown": "true",
        "attachments": "[]",
    }
    token = token_for(sandbox)
    answer = requests.post(
        f"{sandbox.base_url('keliweb')}/api/v2/keliweb/open-ticket",
        files={key: (None, value) for key, value in seed_jquery_fields().items()},
        headers={"X-Requested-With": "XMLHttpRequest", "Authorization": f"Bearer {token}"},
        timeout=5,
    ).json()
    assert answer["result"] == "success" and answer["id"] == "1"
    assert len(answer["tid"]) == 6 and len(answer["c"]) == 8
    ticket = requests.post(
        f"{sandbox.base_url('keliweb')}/api/v2/keliweb/get-ticket",
        data={"ticketnum": answer["tid"]},
        headers={"X-Requested-With": "XMLHttpRequest", "Authorization": f"Bearer {token}"},
        timeout=5,
    ).json()
    assert (ticket["ticketid"], ticket["status"], ticket["deptname"]) == ("1", "Open", "Support")
    assert ticket["replies"]["reply"][0]["message"] == "This is a **sample** ticket message"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("attachments", b64(b'[{"name": "a.txt"}]'), "Invalid attachments"),
        ("attachments", "not base64!", "Invalid attachments"),
        ("customfields", b64(b'a:1:{i:1;s:9:"Google";}'), "Invalid customfields"),
        ("priority", "Urgent", "Invalid Ticket Priority"),
    ],
)
def test_unreadable_encoded_fields_are_refused_with_a_whmcs_error(sandbox, field, value, message):
    token = token_for(sandbox)
    answer = requests.post(
        f"{sandbox.base_url('keliweb')}/api/v2/keliweb/open-ticket",
        data={"deptid": "1", "subject": "s", "message": "m", "clientid": "1", field: value},
        headers={"X-Requested-With": "XMLHttpRequest", "Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert answer.status_code == 200
    assert answer.json()["result"] == "error" and answer.json()["message"].startswith(message)
    assert sandbox.state("keliweb")["tickets"] == []
