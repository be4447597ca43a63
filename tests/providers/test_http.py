"""providers/http.py on its own: statuses to errors, transport failures to "may have applied",
redirects never followed, the Redactor, the recorded Exchange and the User-Agent.

Real HTTP against the sandbox where it can show the behaviour (its fault switch: slow, drop,
redirect); `responses` only for a connect timeout, which a local socket cannot produce.
"""

from __future__ import annotations

import json
import socket
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import requests
import responses
from django.utils import timezone
from django.utils.http import http_date

from providers.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderNotFoundError,
    ProviderRateLimited,
    ProviderTransientError,
    ProviderValidationError,
)
from providers.http import (
    REDACTED,
    RESPONSE_KEEP_CHARS,
    ApiRequest,
    HttpClient,
    Redactor,
    error_for_status,
    retry_after_seconds,
    session_for,
)
from tests.helpers import make_account

SECRET = "s3cret-value-42"


def client(base_url: str, *, timeout: float = 3.0, secrets=(SECRET,), exchanges=None) -> HttpClient:
    return HttpClient(
        base_url=base_url,
        timeout=timeout,
        account_id=None,
        redactor=Redactor(set(secrets)),
        on_exchange=exchanges.append if exchanges is not None else None,
    )


# --- statuses ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "error", "may_have_applied"),
    [
        (401, ProviderAuthError, None),
        (403, ProviderAuthError, None),
        (404, ProviderNotFoundError, None),
        (400, ProviderValidationError, None),
        (409, ProviderValidationError, None),
        (422, ProviderValidationError, None),
        (408, ProviderTransientError, False),
        (503, ProviderTransientError, False),
        (500, ProviderTransientError, True),
        (502, ProviderTransientError, True),
        (504, ProviderTransientError, True),
    ],
)
def test_each_error_status_has_its_class(status, error, may_have_applied):
    found = error_for_status(status, "the provider's words", {})
    assert type(found) is error
    assert (found.message, found.http_status) == ("the provider's words", status)
    if may_have_applied is not None:
        assert found.may_have_applied is may_have_applied


def test_success_is_no_error_and_a_status_without_words_says_its_number():
    assert error_for_status(200, "", {}) is None and error_for_status(204, "", {}) is None
    assert error_for_status(418, "", {}).message == "HTTP 418"


def test_a_429_carries_retry_after_as_seconds_or_an_http_date():
    assert error_for_status(429, "slow down", {"Retry-After": "7"}).retry_after == 7
    later = http_date((timezone.now() + timedelta(seconds=90)).timestamp())
    limited = error_for_status(429, "slow down", {"Retry-After": later})
    assert isinstance(limited, ProviderRateLimited) and 80 <= limited.retry_after <= 90
    assert error_for_status(429, "slow down", {}).retry_after is None
    assert retry_after_seconds("soon") is None and retry_after_seconds("-3") == 0


def test_a_redirect_is_an_error_naming_only_the_targets_scheme_and_host():
    error = error_for_status(302, "", {"Location": "https://user:pw@login.example.com/sso?token=abc"})
    assert type(error) is ProviderError and error.http_status == 302
    assert "a redirect to https://login.example.com;" in error.message
    assert "pw" not in error.message and "token" not in error.message


# --- transport, against the sandbox -------------------------------------------------------------
def test_a_redirect_is_answered_not_followed(sandbox):
    sandbox.faults(script=["redirect"], redirect_to=f"{sandbox.server.url}/kapture/elsewhere")
    response = client(sandbox.base_url("example")).send(ApiRequest("GET", "/api/me"))
    assert response.status == 302
    assert sandbox.control("calls") == {}  # the redirect's target was never asked


def test_every_call_names_the_console_as_its_user_agent(sandbox, settings):
    # Knight's ping echoes the request's headers.
    response = client(sandbox.base_url("knight")).send(ApiRequest("GET", "/ping"))
    assert response.json()["headers"]["user-agent"] == settings.PROVIDER_USER_AGENT


@pytest.mark.django_db
def test_a_netrc_entry_for_the_providers_host_does_not_replace_the_accounts_credentials(
    sandbox, tmp_path, monkeypatch
):
    # An operator's ~/.netrc naming the same host (NETRC points requests at this one): trusting
    # the environment, requests would send that file's login instead of the account's token.
    netrc = tmp_path / "netrc"
    host = urlsplit(sandbox.server.url).hostname
    netrc.write_text(f"machine {host} login intruder password not-the-accounts\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    provider = make_account(sandbox, "kapture").get_provider()
    assert provider.test_connection()  # Kapture accepted the account's own credentials


def test_a_ca_bundle_named_in_the_environment_verifies_provider_certificates(tmp_path, monkeypatch):
    bundle = tmp_path / "company-ca.pem"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    assert session_for(None, "https://ca-bundle.example.test").verify == str(bundle)


def test_no_answer_within_the_timeout_may_have_been_applied(sandbox):
    sandbox.faults(script=["slow"], slow_seconds=1.0)
    exchanges = []
    http = client(sandbox.base_url("example"), timeout=0.3, exchanges=exchanges)
    with pytest.raises(ProviderTransientError) as raised:
        http.send(ApiRequest("GET", "/api/me"))
    assert raised.value.may_have_applied is True
    assert "No answer within 0.3 s" in raised.value.message
    [exchange] = exchanges
    assert exchange.status is None and exchange.error == raised.value.message


def test_a_connection_dropped_after_sending_may_have_been_applied(sandbox):
    sandbox.faults(script=["drop"])
    with pytest.raises(ProviderTransientError) as raised:
        client(sandbox.base_url("example")).send(ApiRequest("GET", "/api/me"))
    assert raised.value.may_have_applied is True


def test_a_refused_connection_was_never_sent(settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again on leaving: nothing listens there
    settings.PROVIDER_PRIVATE_HOSTS = [f"127.0.0.1:{port}"]
    with pytest.raises(ProviderTransientError) as raised:
        client(f"http://127.0.0.1:{port}").send(ApiRequest("GET", "/api/me"))
    assert raised.value.may_have_applied is False
    assert raised.value.message == "Could not connect to the provider."


@responses.activate
def test_a_connect_timeout_was_never_sent():
    responses.get("https://api.example.com/api/me", body=requests.ConnectTimeout("timed out"))
    with pytest.raises(ProviderTransientError) as raised:
        client("https://api.example.com").send(ApiRequest("GET", "/api/me"))
    assert raised.value.may_have_applied is False


# --- what is recorded ---------------------------------------------------------------------------
def test_the_exchange_records_the_call_redacted_and_the_answer(sandbox):
    exchanges = []
    http = client(sandbox.base_url("example"), secrets=(SECRET,), exchanges=exchanges)
    request = ApiRequest(
        "POST",
        "/oauth/token",
        params={"hint": SECRET},
        form={"grant_type": "client_credentials", "client_id": "console", "client_secret": SECRET},
        headers={"Authorization": f"Bearer {SECRET}", "X-Trace": f"trace-{SECRET}"},
    )
    response = http.send(request)
    [exchange] = exchanges
    assert (exchange.method, exchange.status) == ("POST", response.status) == ("POST", 401)
    assert exchange.url == f"{sandbox.base_url('example')}/oauth/token"
    assert exchange.request_headers == {"Authorization": REDACTED, "X-Trace": f"trace-{REDACTED}"}
    assert json.loads(exchange.request_body) == {
        "grant_type": "client_credentials",
        "client_id": "console",
        "client_secret": REDACTED,
    }
    assert json.loads(exchange.response_body)["error"] == "invalid_client"
    assert exchange.started_at is not None and exchange.duration_ms >= 0
    assert SECRET not in repr(exchange)


def test_a_secret_in_the_url_is_redacted_in_the_record():
    http = client("https://api.example.com")
    url, _, _ = http.describe(ApiRequest("GET", f"/tickets?api_key={SECRET}"))
    assert url == f"https://api.example.com/tickets?api_key={REDACTED}"


def test_files_are_described_by_name_and_size_not_content():
    http = client("https://api.example.com")
    _, _, body = http.describe(
        ApiRequest("POST", "/upload", form={"a": 1}, files={"file": ("notes.txt", b"12345", "text/plain")})
    )
    assert body == '{"a": 1} files: file=notes.txt (5 bytes)'


# --- the Redactor -------------------------------------------------------------------------------
def test_the_redactor_masks_secret_looking_headers_and_known_values():
    redactor = Redactor({SECRET, "abc"})  # values under 4 characters are too common to mask
    assert redactor.headers({"X-Api-Key": "anything", "Cookie": "s=1", "Accept": f"a {SECRET} abc"}) == {
        "X-Api-Key": REDACTED,
        "Cookie": REDACTED,
        "Accept": f"a {REDACTED} abc",
    }


def test_the_redactor_masks_secret_looking_fields_at_any_depth():
    redactor = Redactor({SECRET})
    data = {"user": {"password": "pw", "name": f"me {SECRET}"}, "items": [{"apiKey": "k"}], "n": 3}
    assert redactor.fields(data) == {
        "user": {"password": REDACTED, "name": f"me {REDACTED}"},
        "items": [{"apiKey": REDACTED}],
        "n": 3,
    }


def test_a_response_body_is_masked_whether_json_or_not_and_cut_to_size():
    redactor = Redactor({SECRET})
    token_answer = json.dumps({"access_token": "fresh-token-not-yet-known", "expires_in": 60})
    assert json.loads(redactor.body(token_answer)) == {"access_token": REDACTED, "expires_in": 60}
    broken = '<html>{"refresh_token": "fresh-refresh", "note": "' + SECRET + '"'
    assert redactor.body(broken) == f'<html>{{"refresh_token": "{REDACTED}", "note": "{REDACTED}"'
    assert len(redactor.body("x" * (RESPONSE_KEEP_CHARS * 2))) == RESPONSE_KEEP_CHARS


def test_a_longer_secret_is_masked_before_a_shorter_one_inside_it():
    redactor = Redactor({"abcd", "abcdefgh"})
    assert redactor.text("abcdefgh abcd") == f"{REDACTED} {REDACTED}"
