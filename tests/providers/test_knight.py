"""ChatOps Knight: payload builders, signing and parsers on the seed (000), then the adapter
against the sandbox over HTTP."""

import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import responses

from providers.errors import (
    ProviderAuthError,
    ProviderConfigurationError,
    ProviderNotFoundError,
    ProviderResponseError,
    ProviderTransientError,
    ProviderValidationError,
)
from providers.http import ApiRequest
from providers.knight import KnightProvider, KnightTicketForm
from providers.models import ProviderAccount
from tickets.models import Ticket

BASE = "https://knight.example.internal"
SOURCE_TOKEN = "test-source-token-0123456789abcdefghij"  # 32+ bytes, like a real HS256 secret
SETTINGS = {
    "source_id": "console-source",
    "environment": "Prod",
    "account_code_locators": [{"SearchKey": "accountCode", "SearchValue": "demo1"}],
    "event_id": "ChatOps-Knight-JS-SDK",
    "application_name": "Ticket Console",
}
# The seed's initiateTicket example payload (JavaScript in the seed, so embedded literally).
SEED_PAYLOAD = {
    "accountCodeLocators": [{"SearchKey": "accountCode", "SearchValue": "demo1"}],
    "eventId": "ChatOps-Knight-JS-SDK",
    "ticketId": "EVT202109220000_0000",
    "ticketPriority": 1,
    "environment": "Prod",
    "ticketType": "Event",
    "ticketImpact": "High",
    "ticketDesc": "ChatOps Knight JS - initiateTicket endpoint unit test.",
    "callbackAddress": "https://a29c501d-6659-42b1-8408-400f567e40f2.mock.pstmn.io/initiateChatOpsIncidentProcess",
}
# The success answer the SDK's docs show (the seed's "Typical Results" block is empty).
SEED_SUCCESS = {"success": True, "errorMessage": []}


def unsaved_account(**settings) -> ProviderAccount:
    account = ProviderAccount(
        pk=998,
        name="kn",
        kind="knight",
        base_url=BASE,
        timeout=2,
        settings={**SETTINGS, **settings},
        status_map=KnightProvider.default_status_map,
        priority_map=KnightProvider.default_priority_map,
    )
    account.set_credentials({"source_token": SOURCE_TOKEN})
    return account


def unsaved_ticket(**kwargs) -> Ticket:
    defaults = {
        "reference": "TC-000042",
        "title": "Disk full on db-7",
        "description": "/var at 100%",
        "requester_email": "ops@example.com",
        "priority": "high",
        "status": "new",
        "revision": 1,
    }
    return Ticket(**{**defaults, **kwargs})


def signed(request: ApiRequest, token: str = SOURCE_TOKEN) -> dict:
    return jwt.decode(request.headers["X-Chatops-Source-Api-Token"], token, algorithms=["HS256"])


# --- pure hooks -----------------------------------------------------------------------------
def test_create_payload_has_knights_fields_from_ticket_and_account():
    account = unsaved_account(assignment_groups=["L2-Storage"], callback_address="https://console.example/cb")
    ticket = unsaved_ticket(impact="medium", tags=["db"], requester_name="Ada")
    request = KnightProvider(account).build_create(ticket)
    assert (request.method, request.path) == ("POST", "/api/v1/initiateTicket")
    assert request.json == {
        "accountCodeLocators": [{"SearchKey": "accountCode", "SearchValue": "demo1"}],
        "environment": "Prod",
        "eventId": "ChatOps-Knight-JS-SDK",
        "ticketId": "TC-000042",
        "ticketDesc": "Disk full on db-7\n\n/var at 100%\n\n[Ticket Console TC-000042]",
        "ticketPriority": 2,
        "ticketType": "Incident",
        "ticketImpact": "Medium",
        "ticketAssignmentGroups": ["L2-Storage"],
        "callbackAddress": "https://console.example/cb",
        "additionalProperties": {
            "consoleReference": "TC-000042",
            "title": "Disk full on db-7",
            "requesterEmail": "ops@example.com",
            "requesterName": "Ada",
            "tags": ["db"],
        },
    }


def test_create_payload_matches_the_seed_example_field_for_field():
    account = unsaved_account(callback_address=SEED_PAYLOAD["callbackAddress"], ticket_type="Event")
    ticket = unsaved_ticket(reference="EVT202109220000_0000", priority="urgent", impact="high")
    payload = KnightProvider(account).build_create(ticket).json
    assert {k: v for k, v in payload.items() if k in SEED_PAYLOAD and k != "ticketDesc"} == {
        k: v for k, v in SEED_PAYLOAD.items() if k != "ticketDesc"
    }
    assert set(SEED_PAYLOAD) <= set(payload)


def test_ticket_fields_override_the_account_defaults():
    extra = {
        "account_code_locators": [{"SearchKey": "accountCode", "SearchValue": "acme"}],
        "environment": "Dev",
        "event_id": "evt-9",
        "ticket_type": "Event",
        "assignment_groups": ["NOC"],
        "callback_address": "https://cb.example/k",
        "ticket_priority": 4,
    }
    ticket = unsaved_ticket(priority="urgent", extra=extra)
    payload = KnightProvider(unsaved_account()).build_create(ticket).json
    assert payload["accountCodeLocators"] == [{"SearchKey": "accountCode", "SearchValue": "acme"}]
    assert (payload["environment"], payload["eventId"], payload["ticketType"]) == ("Dev", "evt-9", "Event")
    assert (payload["ticketAssignmentGroups"], payload["callbackAddress"]) == (
        ["NOC"],
        "https://cb.example/k",
    )
    assert payload["ticketPriority"] == 4


def test_seed_success_answer_gives_the_console_reference_as_remote_id():
    ref = KnightProvider(unsaved_account()).parse_create(SEED_SUCCESS, unsaved_ticket())
    assert (ref.remote_id, ref.remote_number, ref.remote_url) == ("TC-000042", "TC-000042", "")


def test_update_answer_true_is_success_and_anything_else_is_not():
    provider = KnightProvider(unsaved_account())
    assert provider.parse_update(True, unsaved_ticket()) is None
    assert provider.parse_update(SEED_SUCCESS, unsaved_ticket()) is None
    with pytest.raises(ProviderResponseError):
        provider.parse_update({"ok": 1}, unsaved_ticket())


@pytest.mark.parametrize(
    ("console", "knight"),
    [
        ("new", "NEW"),
        ("open", "OPEN"),
        ("in_progress", "INPROGRESS"),
        ("on_hold", "HOLD"),
        ("pending", "PENDING"),
        ("resolved", "RESOLVE"),
        ("closed", "CLOSE"),
        ("cancelled", "CANCEL"),
    ],
)
def test_update_sends_full_state_with_the_status_in_knights_vocabulary(console, knight):
    ticket = unsaved_ticket(
        remote_id="TC-000042", status=console, extra={"callback_address": "https://c.example"}
    )
    request = KnightProvider(unsaved_account()).build_update(ticket)
    assert request.path == "/api/v1/updateTicket"
    assert request.json["status"] == knight
    assert {"accountCodeLocators", "environment", "eventId", "status", "ticketId"} <= set(request.json)
    assert request.json["ticketId"] == "TC-000042"
    assert "callbackAddress" not in request.json  # not an updateTicket field


def test_every_knight_status_maps_back_to_a_console_status():
    provider = KnightProvider(unsaved_account())
    for remote in (
        "NEW",
        "DISCOVERY",
        "OPEN",
        "INPROGRESS",
        "REOPEN",
        "HOLD",
        "PENDING",
        "CLOSE",
        "CANCEL",
        "RESOLVE",
    ):
        assert provider.console_status_for(remote)
    for console, remote in KnightProvider.default_status_map["outbound"].items():
        assert provider.console_status_for(remote) == console


def test_every_call_is_signed_with_an_hs256_jwt_over_the_source_token():
    provider = KnightProvider(unsaved_account(callback_address="https://console.example/cb"))
    request = provider.build_create(unsaved_ticket())
    provider.authorize(request)
    assert request.headers["X-Chatops-Source-Id"] == "console-source"
    assert request.headers["X-Application-Name"] == "Ticket Console"
    claims = signed(request)
    assert claims["X-Chatops-Source-Id"] == "console-source"
    assert claims["ticketId"] == "TC-000042"
    assert claims["callbackAddress"] == "https://console.example/cb"
    stamp = datetime.fromisoformat(claims["timestamp"])
    assert stamp.tzinfo is not None and abs(datetime.now(UTC) - stamp) < timedelta(minutes=1)
    assert jwt.get_unverified_header(request.headers["X-Chatops-Source-Api-Token"])["alg"] == "HS256"
    # the JWT is a secret of the recorded exchange, like the source token
    assert request.headers["X-Chatops-Source-Api-Token"] in provider.redactor.secrets


def test_transaction_id_is_stable_per_revision_and_operation():
    provider = KnightProvider(unsaved_account())
    first = provider.build_create(unsaved_ticket()).headers["X-Transaction-Id"]
    assert provider.build_create(unsaved_ticket()).headers["X-Transaction-Id"] == first
    assert provider.build_create(unsaved_ticket(revision=2)).headers["X-Transaction-Id"] != first
    assert provider.build_update(unsaved_ticket(remote_id="TC-000042")).headers["X-Transaction-Id"] != first


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        ("environment", "environment"),
        ("event_id", "event id"),
        ("account_code_locators", "account code locators"),
    ],
)
def test_missing_required_setting_is_a_configuration_error_naming_it(missing, named):
    account = unsaved_account(**{missing: ""})
    with pytest.raises(ProviderConfigurationError, match=named):
        KnightProvider(account).build_create(unsaved_ticket())
    # the ticket's own Knight field is enough
    value = SETTINGS[missing]
    KnightProvider(account).build_create(unsaved_ticket(extra={missing: value}))


def test_missing_source_id_is_a_configuration_error():
    provider = KnightProvider(unsaved_account(source_id=""))
    with pytest.raises(ProviderConfigurationError, match="source id"):
        provider.authorize(provider.build_create(unsaved_ticket()))


def test_fetch_and_reply_are_refused_with_reasons():
    provider = KnightProvider(unsaved_account())
    with pytest.raises(ProviderConfigurationError, match="no read-back endpoint"):
        provider.fetch([unsaved_ticket()])
    with pytest.raises(ProviderConfigurationError, match="no comments or replies"):
        provider.reply(unsaved_ticket(), "hi")
    assert KnightProvider.capabilities == {"create", "update", "test"}
    assert KnightProvider.create_is_idempotent


def test_http_200_failure_body_is_a_validation_error_with_knights_messages():
    body = {"success": False, "errorMessage": ["accountCodeLocators matched no account", "Knight is busy"]}
    with pytest.raises(ProviderValidationError) as raised:
        KnightProvider(unsaved_account()).check_body(body)
    assert raised.value.message == "accountCodeLocators matched no account; Knight is busy"
    assert raised.value.field_errors == {
        "account_code_locators": ["accountCodeLocators matched no account"],
        "__all__": ["Knight is busy"],
    }


# --- the extra form ---------------------------------------------------------------------------
def test_extra_form_accepts_good_values_and_cleans_them():
    form = KnightTicketForm(
        data={
            "account_code_locators": '[{"SearchKey": "accountCode", "SearchValue": "acme"}]',
            "environment": "Prod",
            "assignment_groups": "NOC, L2-Storage",
            "callback_address": "https://cb.example/x",
            "ticket_priority": "2",
        }
    )
    assert form.is_valid(), form.errors
    assert form.cleaned_data["account_code_locators"] == [{"SearchKey": "accountCode", "SearchValue": "acme"}]
    assert form.cleaned_data["assignment_groups"] == ["NOC", "L2-Storage"]
    assert form.cleaned_data["ticket_priority"] == 2


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("account_code_locators", {"SearchKey": "a", "SearchValue": "b"}, "JSON list"),
        ("account_code_locators", [], None),  # blank: the account's default applies
        ("account_code_locators", [{"SearchKey": "a"}], 'exactly the keys "SearchKey" and "SearchValue"'),
        ("account_code_locators", [{"SearchKey": "a", "SearchValue": "b", "x": 1}], "exactly the keys"),
        ("account_code_locators", [{"SearchKey": "a", "SearchValue": 7}], "non-empty text"),
        ("account_code_locators", "not json", "valid JSON"),
        ("assignment_groups", ["NOC", 3], "list of names"),
        ("callback_address", "not a url", "valid URL"),
        ("ticket_priority", "5", "1 (highest) to 4 (lowest)"),
        ("ticket_priority", "0", "1 (highest) to 4 (lowest)"),
        ("ticket_priority", "high", "whole numbers from 1 (highest) to 4"),
    ],
)
def test_extra_form_refuses_bad_input_on_the_right_field(field, value, message):
    form = KnightTicketForm(data={field: value})
    if message is None:
        assert form.is_valid(), form.errors
        return
    assert not form.is_valid()
    assert list(form.errors) == [field]
    assert message in form.errors[field][0]


# --- narrow HTTP classification (responses) --------------------------------------------------
@responses.activate
def test_a_loopback_error_body_gives_knights_own_message():
    # How each status is classified is the contract suite's (tests/providers/test_contract.py).
    responses.post(
        f"{BASE}/api/v1/initiateTicket",
        status=403,
        json={"error": {"statusCode": 403, "name": "ForbiddenError", "message": "Knight says no"}},
    )
    with pytest.raises(ProviderAuthError) as raised:
        KnightProvider(unsaved_account()).create(unsaved_ticket())
    assert raised.value.message == "Knight says no"


@responses.activate
def test_loopback_validation_details_become_field_errors_on_console_fields():
    responses.post(
        f"{BASE}/api/v1/initiateTicket",
        status=422,
        json={
            "error": {
                "statusCode": 422,
                "name": "UnprocessableEntityError",
                "code": "VALIDATION_FAILED",
                "message": "The request body is invalid. See error object `details` property for more info.",
                "details": [
                    {
                        "path": "",
                        "code": "required",
                        "message": "must have required property 'ticketDesc'",
                        "info": {"missingProperty": "ticketDesc"},
                    },
                    {
                        "path": "/ticketPriority",
                        "code": "maximum",
                        "message": "must be <= 4",
                        "info": {"limit": 4},
                    },
                    {
                        "path": ".accountCodeLocators[0]",
                        "code": "required",
                        "message": "must have required property 'SearchValue'",
                        "info": {"missingProperty": "SearchValue"},
                    },
                    {"path": "/eventId", "code": "type", "message": "must be string", "info": {}},
                    {
                        "path": "/channelCreateRequest",
                        "code": "type",
                        "message": "must be object",
                        "info": {},
                    },
                ],
            }
        },
    )
    with pytest.raises(ProviderValidationError) as raised:
        KnightProvider(unsaved_account()).create(unsaved_ticket())
    assert raised.value.http_status == 422
    assert raised.value.message.startswith(
        "Knight refused the request: must have required property 'ticketDesc'; ticketPriority: must be <= 4"
    )
    assert raised.value.field_errors == {
        "description": ["must have required property 'ticketDesc'"],
        "priority": ["ticketPriority: must be <= 4"],
        "account_code_locators": ["accountCodeLocators[0]: must have required property 'SearchValue'"],
        "event_id": ["eventId: must be string"],
        "__all__": ["channelCreateRequest: must be object"],
    }


@responses.activate
def test_update_answered_false_is_refused():
    responses.post(f"{BASE}/api/v1/updateTicket", json=False)
    with pytest.raises(ProviderValidationError, match="did not apply the update"):
        KnightProvider(unsaved_account()).update(unsaved_ticket(remote_id="TC-000042"))


# --- contract: the adapter against the sandbox over HTTP -------------------------------------
def recording(account):
    exchanges = []
    return KnightProvider(account, on_exchange=exchanges.append), exchanges


@pytest.mark.django_db
def test_create_then_update_against_the_sandbox(sandbox, account_factory):
    account = account_factory("knight")
    provider = KnightProvider(account)
    ticket = unsaved_ticket(account=account, priority="urgent", impact="high")
    ref = provider.create(ticket)
    assert ref.remote_id == "TC-000042"
    [remote] = sandbox.state("knight")["tickets"]
    assert (remote["ticketId"], remote["status"], remote["ticketPriority"]) == ("TC-000042", "NEW", 1)
    assert remote["ticketImpact"] == "High"
    assert "[Ticket Console TC-000042]" in remote["ticketDesc"]

    ticket.remote_id, ticket.status, ticket.revision = ref.remote_id, "resolved", 2
    assert provider.update(ticket) is None
    [remote] = sandbox.state("knight")["tickets"]
    assert remote["status"] == "RESOLVE"
    assert provider.console_status_for(remote["status"]) == "resolved"
    calls = sandbox.state("knight")["calls"]
    assert [(c["endpoint"], c["status"]) for c in calls] == [("initiateTicket", 200), ("updateTicket", 200)]
    assert all(c["applicationName"] == "Ticket Console" for c in calls)
    assert calls[0]["transactionId"] != calls[1]["transactionId"]


@pytest.mark.django_db
def test_a_create_whose_answer_was_lost_is_resent_without_a_duplicate(sandbox, account_factory):
    provider = KnightProvider(account_factory("knight"))
    ticket = unsaved_ticket()
    sandbox.faults(script=["lost"], vendors=["knight"])
    with pytest.raises(ProviderTransientError) as raised:
        provider.create(ticket)
    assert raised.value.may_have_applied
    assert provider.create(ticket).remote_id == "TC-000042"
    state = sandbox.state("knight")
    assert len(state["tickets"]) == 1 and state["tickets"][0]["initiate_calls"] == 2
    first, second = state["calls"]
    assert first["transactionId"] == second["transactionId"]  # the resend is the same operation


@pytest.mark.django_db
def test_a_retried_update_carries_the_same_transaction_id(sandbox, account_factory):
    provider = KnightProvider(account_factory("knight"))
    ticket = unsaved_ticket()
    provider.create(ticket)
    ticket.remote_id, ticket.status, ticket.revision = "TC-000042", "on_hold", 2
    sandbox.faults(script=["lost"], vendors=["knight"])
    with pytest.raises(ProviderTransientError):
        provider.update(ticket)
    provider.update(ticket)
    _, lost, retried = sandbox.state("knight")["calls"]
    assert lost["transactionId"] == retried["transactionId"]
    assert sandbox.state("knight")["tickets"][0]["status"] == "HOLD"


@pytest.mark.django_db
def test_recorded_exchange_never_holds_the_source_token_or_the_jwt(sandbox, account_factory):
    provider, exchanges = recording(account_factory("knight"))
    provider.create(unsaved_ticket())
    token = sandbox.credentials["knight"]["source_token"]
    [exchange] = exchanges
    assert exchange.request_headers["X-Chatops-Source-Api-Token"] == "[redacted]"
    recorded = json.dumps(
        [
            exchange.url,
            exchange.request_headers,
            exchange.request_body,
            exchange.response_body,
            exchange.error,
        ]
    )
    assert token not in recorded and "eyJ" not in recorded
    assert exchange.request_headers["X-Chatops-Source-Id"] == "ticket-console-sandbox"


@pytest.mark.django_db
def test_wrong_source_token_is_an_auth_error_with_knights_message(sandbox, account_factory):
    account = account_factory("knight", credentials={"source_token": "not-the-token-but-long-enough-0123"})
    with pytest.raises(ProviderAuthError, match="signature verification failed"):
        KnightProvider(account).create(unsaved_ticket())
    assert sandbox.state("knight")["tickets"] == []


@pytest.mark.django_db
def test_wrong_source_id_is_an_auth_error(sandbox, account_factory):
    account = account_factory("knight")
    account.settings["source_id"] = "someone-else"
    with pytest.raises(ProviderAuthError, match="Unknown source id"):
        KnightProvider(account).create(unsaved_ticket())


@pytest.mark.django_db
def test_a_jwt_signed_with_a_stale_timestamp_is_refused(sandbox, account_factory, monkeypatch):
    provider = KnightProvider(account_factory("knight"))
    monkeypatch.setattr(provider, "signing_time", lambda: datetime.now().astimezone() - timedelta(minutes=6))
    with pytest.raises(ProviderAuthError, match="more than 5 minutes off"):
        provider.create(unsaved_ticket())


@pytest.mark.django_db
def test_a_jwt_signed_for_another_ticket_is_refused(sandbox, account_factory):
    provider = KnightProvider(account_factory("knight"))
    request = provider.build_create(unsaved_ticket())
    provider.authorize(request)
    request.json["ticketId"] = "TC-000043"
    with pytest.raises(ProviderAuthError, match="another ticketId"):
        provider.interpret(provider.http.send(request))


@pytest.mark.django_db
def test_missing_required_fields_are_refused_field_by_field(sandbox, account_factory):
    provider = KnightProvider(account_factory("knight"))
    with pytest.raises(ProviderValidationError) as raised:
        provider.call(ApiRequest("POST", "/api/v1/initiateTicket", json={"ticketId": "TC-000042"}))
    assert raised.value.http_status == 422
    assert set(raised.value.field_errors) == {
        "account_code_locators",
        "environment",
        "event_id",
        "description",
        "priority",
    }
    assert sandbox.state("knight")["tickets"] == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"ticketImpact": "Severe"}, "impact", "ticketImpact: must be equal to one of the allowed values"),
        ({"callbackAddress": "not-a-url"}, "callback_address", 'callbackAddress: must match format "uri"'),
        ({"ticketAssignmentGroups": "NOC"}, "assignment_groups", "ticketAssignmentGroups: must be array"),
        ({"environment": " "}, "environment", "environment: must NOT have fewer than 1 characters"),
        ({"eventId": 7}, "event_id", "eventId: must be string"),
        ({"accountCodeLocators": []}, "account_code_locators", "accountCodeLocators: must NOT have fewer"),
        ({"ticketPriority": 5}, "priority", "ticketPriority: must be <= 4"),
        ({"severity": 1}, "__all__", "must NOT have additional properties"),
    ],
)
def test_knight_refuses_each_bad_body_value_on_its_field(sandbox, account_factory, change, field, message):
    provider = KnightProvider(account_factory("knight"))
    request = provider.build_create(unsaved_ticket())
    request.json.update(change)
    with pytest.raises(ProviderValidationError) as raised:
        provider.call(request)
    assert raised.value.http_status == 422
    assert list(raised.value.field_errors) == [field]
    assert raised.value.field_errors[field][0].startswith(message)
    assert sandbox.state("knight")["tickets"] == []


@pytest.mark.django_db
def test_a_body_that_is_not_json_is_refused(sandbox, account_factory):
    provider = KnightProvider(account_factory("knight"))
    request = ApiRequest(
        "POST",
        "/api/v1/initiateTicket",
        form={"ticketId": "TC-000042"},
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(ProviderValidationError, match="Invalid JSON") as raised:
        provider.call(request)
    assert raised.value.http_status == 400


@pytest.mark.django_db
def test_a_priority_outside_1_to_4_is_refused_on_the_priority_field(sandbox, account_factory):
    account = account_factory("knight")
    account.priority_map = {"urgent": 0, "high": "P2"}  # an admin's mistakes
    provider = KnightProvider(account)
    with pytest.raises(ProviderValidationError) as raised:
        provider.create(unsaved_ticket(priority="urgent"))
    assert raised.value.field_errors == {"priority": ["ticketPriority: must be >= 1"]}
    with pytest.raises(ProviderValidationError) as raised:
        provider.create(unsaved_ticket(priority="high"))
    assert raised.value.field_errors == {"priority": ["ticketPriority: must be number"]}


@pytest.mark.django_db
def test_a_status_outside_knights_vocabulary_is_refused(sandbox, account_factory):
    status_map = {"outbound": {**KnightProvider.default_status_map["outbound"], "closed": "DONE"}}
    account = account_factory("knight")
    account.status_map = status_map
    provider = KnightProvider(account)
    provider.create(unsaved_ticket())
    with pytest.raises(ProviderValidationError) as raised:
        provider.update(unsaved_ticket(remote_id="TC-000042", status="closed"))
    assert raised.value.field_errors == {"status": ["status: must be equal to one of the allowed values"]}


@pytest.mark.django_db
def test_malformed_locators_in_the_account_are_refused_on_the_locator_field(sandbox, account_factory):
    account = account_factory("knight")
    account.settings["account_code_locators"] = [{"SearchKey": "accountCode"}]
    with pytest.raises(ProviderValidationError) as raised:
        KnightProvider(account).create(unsaved_ticket())
    assert raised.value.field_errors == {
        "account_code_locators": ["accountCodeLocators.0: must have required property 'SearchValue'"],
    }


@pytest.mark.django_db
def test_locators_naming_no_knight_account_are_a_200_failure_body(sandbox, account_factory):
    provider = KnightProvider(account_factory("knight"))
    extra = {"account_code_locators": [{"SearchKey": "accountCode", "SearchValue": "nobody"}]}
    with pytest.raises(ProviderValidationError, match="No account matches") as raised:
        provider.create(unsaved_ticket(extra=extra))
    assert raised.value.http_status is None  # answered HTTP 200
    assert list(raised.value.field_errors) == ["account_code_locators"]
    assert sandbox.state("knight")["tickets"] == []


@pytest.mark.django_db
def test_updating_a_ticket_knight_does_not_have_is_not_found(sandbox, account_factory):
    provider = KnightProvider(account_factory("knight"))
    with pytest.raises(ProviderNotFoundError, match='Ticket "TC-000099" not found'):
        provider.update(unsaved_ticket(reference="TC-000099", remote_id="TC-000099"))


@pytest.mark.django_db
def test_a_form_encoded_body_is_refused_like_loopback_does(sandbox, account_factory):
    provider = KnightProvider(account_factory("knight"))
    request = ApiRequest("POST", "/api/v1/initiateTicket", form={"ticketId": "TC-000042"})
    with pytest.raises(ProviderValidationError, match="does not match \\[application/json\\]"):
        provider.call(request)


@pytest.mark.django_db
def test_connection_test_pings_and_proves_the_credentials(sandbox, account_factory):
    message = KnightProvider(account_factory("knight")).test_connection()
    assert "Hello from LoopBack" in message and "accepted the source id and token" in message
    assert sandbox.state("knight")["tickets"] == []  # the probe created nothing
    wrong = account_factory("knight", name="wrong", credentials={"source_token": "x" * 40})
    with pytest.raises(ProviderAuthError, match="signature verification failed"):
        KnightProvider(wrong).test_connection()
