"""providers/base.py on its own: the flow every provider shares, through a minimal provider
whose hooks are one line each (`responses` plays its API: these are narrow unit tests)."""

from __future__ import annotations

from typing import Any

import pytest
import responses

from providers.base import CREATE, FETCH, TEST, UPDATE, Provider, RemoteRef
from providers.errors import (
    ProviderAuthError,
    ProviderConfigurationError,
    ProviderError,
    ProviderNotFoundError,
    ProviderResponseError,
    ProviderValidationError,
)
from providers.http import REDACTED, ApiRequest
from providers.models import ProviderAccount
from tickets.models import Ticket

BASE = "https://desk.example.com"
KEY = "key-0123456789"


class MinimalProvider(Provider):
    kind = "example"
    label = "Minimal Desk"
    capabilities = frozenset({CREATE, UPDATE, TEST})
    unsupported_reasons = {FETCH: "Minimal Desk cannot read tickets back."}
    updatable_fields = frozenset({"title", "status"})

    reauthorizations = 0
    can_reauthorize = False

    def authorize(self, request: ApiRequest) -> None:
        request.headers["X-Api-Key"] = self.credential("key")

    def reauthorize(self) -> bool:
        self.reauthorizations += 1
        return self.can_reauthorize

    def build_create(self, ticket) -> ApiRequest:
        return ApiRequest("POST", "/tickets", json={"title": ticket.title, "password": "never-shown"})

    def parse_create(self, data: Any, ticket) -> RemoteRef:
        return RemoteRef(remote_id=str(data["id"]))

    def build_update(self, ticket) -> ApiRequest:
        return ApiRequest("PUT", f"/tickets/{ticket.remote_id}", json={"title": ticket.title})

    def build_test(self) -> ApiRequest:
        return ApiRequest("GET", "/tickets/0")

    def check_body(self, data: Any) -> None:
        if isinstance(data, dict) and data.get("ok") is False:
            raise ProviderValidationError(str(data.get("why")))


def provider(cls=MinimalProvider, **fields) -> MinimalProvider:
    values = {"name": "Minimal", "kind": "example", "base_url": BASE, "timeout": 2, **fields}
    account = ProviderAccount(**values)
    account.set_credentials({"key": KEY})
    return cls(account)


def ticket(**fields) -> Ticket:
    return Ticket(**{"reference": "TC-000007", "title": "Printer on fire", "status": "new", **fields})


# --- what the class says it can do ---------------------------------------------------------
@responses.activate
def test_an_unsupported_operation_is_refused_before_anything_is_sent():
    with pytest.raises(ProviderConfigurationError) as raised:
        provider().fetch([ticket(remote_id="1")])
    assert str(raised.value) == "Minimal Desk cannot read tickets back."
    with pytest.raises(ProviderConfigurationError) as raised:
        provider().reply(ticket(remote_id="1"), "hello")
    assert str(raised.value) == "Minimal Desk does not support the 'reply' operation."
    assert len(responses.calls) == 0


def test_fields_no_update_can_carry_are_kept_here_with_a_reason_in_words():
    changed = {"status", "priority", "description"}
    assert MinimalProvider.fields_kept_here(changed) == ["description", "priority"]
    assert MinimalProvider.reason_kept_here(["description", "priority"]) == (
        "Minimal Desk cannot change the description or priority of a ticket after it is created."
    )

    class NoUpdates(MinimalProvider):
        capabilities = frozenset({CREATE})
        unsupported_reasons = {UPDATE: "Minimal Desk keeps tickets as they were sent."}

    assert NoUpdates.fields_kept_here({"title", "status"}) == ["status", "title"]
    assert NoUpdates.reason_kept_here(["title"]) == "Minimal Desk keeps tickets as they were sent."

    class UpdatesAll(MinimalProvider):
        updatable_fields = None

    assert UpdatesAll.fields_kept_here({"title", "due_at"}) == []


def test_a_stored_limit_outside_the_bounds_is_a_configuration_error_before_any_call():
    with pytest.raises(ProviderConfigurationError, match="cannot be used: .* Fix it under Limits."):
        provider(timeout=0)


def test_a_missing_credential_names_it():
    account = ProviderAccount(name="Minimal", kind="example", base_url=BASE, timeout=2)
    with pytest.raises(ProviderConfigurationError, match="has no 'key' credential set"):
        MinimalProvider(account).create(ticket())


# --- the flow ------------------------------------------------------------------------------
@responses.activate
def test_a_create_is_authorized_sent_and_parsed():
    call = responses.post(f"{BASE}/tickets", json={"id": 41}, status=201)
    assert provider().create(ticket()) == RemoteRef(remote_id="41")
    assert call.calls[0].request.headers["X-Api-Key"] == KEY


@responses.activate
@pytest.mark.parametrize(("can_reauthorize", "sends"), [(True, 2), (False, 1)])
def test_a_401_is_retried_once_only_where_reauthorizing_makes_sense(can_reauthorize, sends):
    call = responses.post(f"{BASE}/tickets", json={"message": "Bad key."}, status=401)
    minimal = provider()
    minimal.can_reauthorize = can_reauthorize
    with pytest.raises(ProviderAuthError, match="Bad key."):
        minimal.create(ticket())
    assert (minimal.reauthorizations, call.call_count) == (1, sends)


@responses.activate
def test_a_401_then_success_after_reauthorizing_is_a_success():
    responses.post(f"{BASE}/tickets", json={"message": "expired"}, status=401)
    responses.post(f"{BASE}/tickets", json={"id": 5}, status=201)
    minimal = provider()
    minimal.can_reauthorize = True
    assert minimal.create(ticket()).remote_id == "5"


@responses.activate
def test_a_redirect_is_an_error_and_is_not_followed():
    responses.post(f"{BASE}/tickets", status=301, headers={"Location": "https://login.example.net/x"})
    with pytest.raises(ProviderError, match="redirect to https://login.example.net") as raised:
        provider().create(ticket())
    assert raised.value.http_status == 301
    assert len(responses.calls) == 1


@responses.activate
@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"message": "Title too long."}, "Title too long."),
        ({"userMessage": "Category unknown."}, "Category unknown."),
        ({"errorMessage": "No such queue."}, "No such queue."),
        ("<html>Bad request</html>", "HTTP 422: <html>Bad request</html>"),
    ],
)
def test_an_error_status_carries_the_providers_own_words(body, words):
    kwargs = {"json": body} if isinstance(body, dict) else {"body": body}
    responses.post(f"{BASE}/tickets", status=422, **kwargs)
    with pytest.raises(ProviderValidationError) as raised:
        provider().create(ticket())
    assert raised.value.message == words


@responses.activate
def test_a_success_status_whose_body_reports_a_failure_is_that_failure():
    responses.post(f"{BASE}/tickets", json={"ok": False, "why": "Duplicate title."}, status=200)
    with pytest.raises(ProviderValidationError, match="Duplicate title."):
        provider().create(ticket())


@responses.activate
def test_a_success_status_with_a_body_that_is_not_json_may_have_been_applied():
    responses.post(f"{BASE}/tickets", body="<html>Gateway</html>", status=200)
    with pytest.raises(ProviderResponseError) as raised:
        provider().create(ticket())
    assert raised.value.may_have_applied is True
    assert raised.value.message == "The provider answered HTTP 200 with a body that is not JSON."


@responses.activate
def test_a_provider_that_expects_no_json_takes_an_empty_answer():
    class EmptyAnswers(MinimalProvider):
        expects_json = False

    responses.put(f"{BASE}/tickets/9", body="", status=204)
    assert EmptyAnswers(provider().account).update(ticket(remote_id="9")) is None


@responses.activate
def test_a_connection_test_probing_a_missing_ticket_counts_not_found_as_connected():
    responses.get(f"{BASE}/tickets/0", json={"message": "No ticket 0."}, status=404)
    with pytest.raises(ProviderNotFoundError):
        provider().test_connection()

    class Probing(MinimalProvider):
        test_probe_is_missing_ticket = True

    assert Probing(provider().account).test_connection() == "Connected."


# --- preview -------------------------------------------------------------------------------
@responses.activate
def test_a_preview_shows_the_request_with_secrets_masked_and_sends_nothing():
    shown = provider().preview(ticket())
    assert shown == {
        "method": "POST",
        "url": f"{BASE}/tickets",
        "headers": {},
        "body": '{"title": "Printer on fire", "password": "' + REDACTED + '"}',
    }
    assert provider().preview(ticket(remote_id="3"))["method"] == "PUT"
    assert len(responses.calls) == 0


def test_a_preview_of_a_change_the_provider_cannot_send_says_why():
    class NoUpdates(MinimalProvider):
        capabilities = frozenset({CREATE})
        unsupported_reasons = {UPDATE: "Minimal Desk keeps tickets as they were sent."}

    with pytest.raises(ProviderConfigurationError, match="keeps tickets as they were sent"):
        NoUpdates(provider().account).preview(ticket(remote_id="3"))
