"""The closed adapter template (providers/base.py): the hooks a new provider fills instead of
overriding the flow — field errors read from a refusal's body, token calls the adapter marks,
uploads reported to the console, inbound callbacks declared on the class, demo settings."""

from typing import Any

import pytest
import responses
from django.urls import reverse

from providers.base import TEST, Provider
from providers.errors import ProviderValidationError
from providers.forms import vocabulary
from providers.http import ApiRequest, ApiResponse
from providers.inbound import InboundChange, handler_for
from providers.knight import KnightProvider
from providers.models import ProviderAccount
from providers.motadata import MotadataProvider
from providers.registry import PROVIDERS, get_provider_class
from tests.providers.test_motadata import unsaved_ticket
from tickets.attempts import AttemptLog
from tickets.models import SyncAttempt
from tickets.ui import describe_attempt

BASE = "https://api.example-helpdesk.com"


class FieldErrorsProvider(Provider):
    """A provider that fills only the field-errors hook: Laravel-style `errors` in a 422."""

    kind = "field-errors"
    label = "Field Errors Desk"
    capabilities = frozenset({TEST})

    def build_test(self) -> ApiRequest:
        return ApiRequest("GET", "/ping")

    def field_errors(self, data: Any, response: ApiResponse | None) -> dict[str, list[str]]:
        names = {"subject": "title", "email": "requester_email"}
        errors = data.get("errors") if isinstance(data, dict) else {}
        return {names.get(key, "__all__"): list(texts) for key, texts in (errors or {}).items()}


def unsaved_account() -> ProviderAccount:
    return ProviderAccount(pk=996, name="fe", kind="kapture", base_url=BASE, timeout=2)


@responses.activate
def test_a_refusals_body_becomes_errors_on_console_fields_through_the_hook():
    responses.get(
        f"{BASE}/ping",
        status=422,
        json={
            "message": "The given data was invalid.",
            "errors": {"subject": ["The subject is too long."], "weird": ["Bad."]},
        },
    )
    with pytest.raises(ProviderValidationError) as raised:
        FieldErrorsProvider(unsaved_account()).test_connection()
    assert raised.value.field_errors == {"title": ["The subject is too long."], "__all__": ["Bad."]}
    assert raised.value.http_status == 422


@responses.activate
def test_the_hook_is_not_asked_about_a_refusal_that_is_not_the_tickets_fault():
    responses.get(f"{BASE}/ping", status=401, json={"errors": {"subject": ["x"]}})
    with pytest.raises(Exception) as raised:
        FieldErrorsProvider(unsaved_account()).test_connection()
    assert not isinstance(raised.value, ProviderValidationError)


@pytest.mark.django_db
def test_a_token_call_is_recorded_as_signing_in_not_as_the_create(sandbox, account_factory):
    account = account_factory("motadata")
    log = AttemptLog()
    provider = MotadataProvider(account, on_exchange=log.add)
    provider.create(unsaved_ticket())
    rows = log.rows(account_id=account.pk, operation="create", outcome="success", message="")
    assert [row.operation for row in rows] == [SyncAttempt.Operation.SIGN_IN, SyncAttempt.Operation.CREATE]
    assert [describe_attempt(row, provider.label) for row in rows] == [
        "Signed in to Motadata ServiceOps",
        "Created in Motadata ServiceOps",
    ]
    failed = SyncAttempt(operation=SyncAttempt.Operation.SIGN_IN, outcome=SyncAttempt.Outcome.FAILED)
    assert describe_attempt(failed, provider.label) == "Signing in to Motadata ServiceOps failed"


def test_callbacks_are_declared_by_the_provider_and_keep_knights_address():
    kind, handler = handler_for("knight")
    assert kind == "knight" and handler is KnightProvider.inbound
    assert handler_for("motadata") is None  # Motadata does not call back
    # Addresses already given to Knight keep working: the generic route renders them exactly.
    assert reverse("inbound", kwargs={"route": "knight", "account_id": 7, "secret": "s3"}) == (
        "/inbound/knight/7/s3/"
    )
    change = handler.parse({"ticketId": " TC-000001 ", "status": "RESOLVE"})
    assert change == InboundChange("TC-000001", "RESOLVE")
    assert handler.parse({"status": "RESOLVE"}) is None
    accepted = ["current", "previous"]  # the previous secret within its grace after a rotation
    assert handler.verify("current", accepted) and handler.verify("previous", accepted)
    assert not handler.verify("guess", ["current"]) and not handler.verify("", [])


def test_demo_settings_are_declared_on_every_provider_and_offered_in_the_defaults_table():
    for kind in PROVIDERS:
        provider_class = get_provider_class(kind)
        assert isinstance(provider_class.demo_settings, dict)
        assert set(provider_class.demo_settings) <= set(vocabulary(kind)["settings"])
