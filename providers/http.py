"""All HTTP to providers: one Session per account, timeouts, User-Agent, error classes,
and a redacted record of every exchange.

Modelled on Sentry's ApiClient: transport errors are mapped to typed errors in one place
(`send`), and HTTP statuses in another (`error_for_status`).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.utils import timezone
from urllib3.exceptions import NameResolutionError, NewConnectionError

from providers.egress import ALLOW_LIST_SETTING, RefusedDestination, check_request_url
from providers.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderNotFoundError,
    ProviderRateLimited,
    ProviderTransientError,
    ProviderValidationError,
)
from providers.transport import CheckedAdapter

REDACTED = "[redacted]"
RESPONSE_KEEP_CHARS = 4000
SECRET_HEADER = re.compile(r"authorization|token|secret|api[-_]?key|password|cookie", re.I)
SECRET_FIELD = re.compile(r"pass(word)?|secret|token|api[-_]?key|authorization", re.I)
# For bodies that are not valid JSON (truncated, or JSON inside HTML): "…token": "value".
SECRET_IN_JSON_TEXT = re.compile(r'("[^"]*(?:token|secret|password)[^"]*"\s*:\s*")[^"]*(")', re.I)


@dataclass
class ApiRequest:
    """A request as the vendor hooks describe it, before auth is added. Pure data."""

    method: str
    path: str
    json: Any = None
    form: dict[str, Any] | None = None
    files: dict[str, tuple[str, bytes, str]] | None = None
    multipart: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] | None = None
    url: str | None = None  # absolute URL, overriding base_url + path (token endpoints)
    #: What the call is for when it is not the operation itself: SIGN_IN for a token or key
    #: exchange, so the console records it as signing in, never as "Created in ...".
    purpose: str = ""


#: ApiRequest.purpose of a call that obtains or renews credentials (tokens.py marks its own).
SIGN_IN = "sign_in"


@dataclass
class ApiResponse:
    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.text)
        except (ValueError, RecursionError):  # not JSON, or nested deeper than Python recurses
            return None


@dataclass
class Exchange:
    """What is recorded of one call: redacted request, truncated response, outcome."""

    method: str
    url: str
    request_headers: dict[str, str]
    request_body: str
    started_at: Any
    duration_ms: int = 0
    status: int | None = None
    response_body: str = ""
    error: str = ""
    #: The request's purpose (SIGN_IN for a token call; "" for the operation itself).
    purpose: str = ""


class Redactor:
    """Removes every known secret value, and secret-looking headers and fields."""

    def __init__(self, secrets: set[str] | None = None) -> None:
        self.secrets = {s for s in (secrets or set()) if s and len(s) >= 4}

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 4:
            self.secrets.add(secret)

    def text(self, value: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            value = value.replace(secret, REDACTED)
        return value

    def body(self, text: str, limit: int = RESPONSE_KEEP_CHARS) -> str:
        """A response body for the record: known secrets removed, and the values of
        secret-looking JSON keys masked too, since a token answer is recorded before the
        provider has read (and registered) the token it carries."""
        try:
            masked = json.dumps(self.fields(json.loads(text)), ensure_ascii=False)
        except (ValueError, RecursionError):  # not JSON, or nested deeper than Python recurses
            masked = SECRET_IN_JSON_TEXT.sub(rf"\g<1>{REDACTED}\g<2>", self.text(text))
        return masked[:limit]

    def headers(self, headers: dict[str, str]) -> dict[str, str]:
        return {
            name: REDACTED if SECRET_HEADER.search(name) else self.text(str(value))
            for name, value in headers.items()
        }

    def fields(self, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: REDACTED if SECRET_FIELD.search(str(k)) else self.fields(v) for k, v in data.items()}
        if isinstance(data, list):
            return [self.fields(v) for v in data]
        if isinstance(data, str):
            return self.text(data)
        return data


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - timezone.now()).total_seconds())
    except (TypeError, ValueError):
        return None


def error_for_status(status: int, message: str, headers: dict[str, str]) -> ProviderError | None:
    """The error an HTTP status means, or None for success."""
    if status < 300:
        return None
    if status < 400:
        return redirect_error(status, headers)
    text = message or f"HTTP {status}"
    if status in (401, 403):
        return ProviderAuthError(text, http_status=status)
    if status == 404:
        return ProviderNotFoundError(text, http_status=status)
    if status == 429:
        return ProviderRateLimited(
            text, retry_after=retry_after_seconds(headers.get("Retry-After")), http_status=status
        )
    if status in (408, 503):
        # The service refused before doing the work.
        return ProviderTransientError(text, may_have_applied=False, http_status=status)
    if status >= 500:
        return ProviderTransientError(text, may_have_applied=True, http_status=status)
    return ProviderValidationError(text, http_status=status)


def redirect_error(status: int, headers: dict[str, str]) -> ProviderError:
    """Provider calls never follow redirects: the credential would go to wherever the answer
    points, unchecked. Only the target's scheme and host are named (its path may hold a token)."""
    location = headers.get("Location") or ""
    try:
        target = urlsplit(location)
        where = f"{target.scheme}://{target.netloc.rpartition('@')[2]}" if target.netloc else ""
    except ValueError:
        where = ""
    to = f" to {where}" if where else ""
    return ProviderError(
        f"The provider answered HTTP {status}, a redirect{to}; provider calls do not follow "
        "redirects. Check the account's base URL (https, host and path as the provider documents).",
        http_status=status,
    )


#: The most calls to one account a process makes at once (the batched push's ceiling on an
#: account's `max_in_flight`): its Session keeps that many connections alive between calls.
#: With requests' default of 10, a run with 16 in flight closed and reopened the rest.
MAX_CALLS_IN_FLIGHT = 64

_sessions: dict[tuple, requests.Session] = {}
_sessions_lock = threading.Lock()


def session_for(account_id: int | None, base_url: str) -> requests.Session:
    """One Session per account (per process), so connections are reused.

    Its transport checks every address it connects to (providers/transport.py). A kept-alive
    connection was checked against the allow-list in force when it was opened, so the
    allow-list is part of the key: a changed list never reuses those connections.

    It takes nothing from the environment per call (`trust_env` off). requests would
    otherwise look up ~/.netrc on every call and, finding the provider's host there, replace
    the account's Authorization header with that file's login; and it would read proxies the
    transport refuses anyway. Those look-ups were a tenth of a call's CPU. The one setting
    kept, a CA bundle named by REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE, is read once here, as
    requests reads it.
    """
    key = (account_id or 0, base_url, tuple(getattr(settings, ALLOW_LIST_SETTING, ())))
    with _sessions_lock:
        session = _sessions.get(key)
        if session is None:
            session = requests.Session()
            session.trust_env = False
            session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
            session.headers["User-Agent"] = settings.PROVIDER_USER_AGENT
            session.mount("http://", CheckedAdapter(pool_maxsize=MAX_CALLS_IN_FLIGHT))
            session.mount("https://", CheckedAdapter(pool_maxsize=MAX_CALLS_IN_FLIGHT))
            _sessions[key] = session
        return session


class HttpClient:
    def __init__(
        self,
        *,
        base_url: str,
        timeout: float,
        account_id: int | None,
        redactor: Redactor,
        on_exchange: Callable[[Exchange], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session_for(account_id, self.base_url)
        self.redactor = redactor
        self.on_exchange = on_exchange

    def url_for(self, request: ApiRequest) -> str:
        return request.url or f"{self.base_url}/{request.path.lstrip('/')}"

    def describe(self, request: ApiRequest) -> tuple[str, dict[str, str], str]:
        """URL, headers and body of `request`, redacted: for the record and for previews."""
        if request.json is not None:
            body = json.dumps(self.redactor.fields(request.json), ensure_ascii=False)
        elif request.form is not None:
            body = json.dumps(self.redactor.fields(request.form), ensure_ascii=False)
        else:
            body = ""
        if request.files:
            body += " files: " + ", ".join(
                f"{name}={spec[0]} ({len(spec[1])} bytes)" for name, spec in request.files.items()
            )
        return self.redactor.text(self.url_for(request)), self.redactor.headers(request.headers), body

    def send(self, request: ApiRequest) -> ApiResponse:
        url, headers, body = self.describe(request)
        exchange = Exchange(
            request.method, url, headers, body, started_at=timezone.now(), purpose=request.purpose
        )
        started = time.monotonic()
        refused = False
        try:
            response = self._perform(request)
        except RefusedDestination:
            refused = True  # nothing was sent: no exchange; the attempt row carries the reason
            raise
        except ProviderError as exc:
            exchange.error = self.redactor.text(exc.message)
            raise
        else:
            exchange.status = response.status
            exchange.response_body = self.redactor.body(response.text)
            return response
        finally:
            exchange.duration_ms = int((time.monotonic() - started) * 1000)
            if self.on_exchange and not refused:
                self.on_exchange(exchange)

    def _perform(self, request: ApiRequest) -> ApiResponse:
        url = self.url_for(request)
        check_request_url(url)
        # A 3xx is answered as an error (error_for_status), never followed.
        kwargs: dict[str, Any] = {
            "headers": request.headers,
            "timeout": self.timeout,
            "allow_redirects": False,
        }
        if request.params:
            kwargs["params"] = request.params
        if request.json is not None:
            kwargs["json"] = request.json
        elif request.multipart or request.files:
            # requests encodes multipart when `files` is given; plain fields go as (None, value).
            parts = {k: (None, _form_value(v)) for k, v in (request.form or {}).items()}
            parts.update(request.files or {})
            kwargs["files"] = parts
        elif request.form is not None:
            kwargs["data"] = {k: _form_value(v) for k, v in request.form.items()}
        # The causes are dropped below on purpose: requests' exceptions name the full URL and
        # hold the prepared request, headers and all, which can carry a credential.
        try:
            raw = self.session.request(request.method, url, **kwargs)
        except requests.ConnectTimeout:
            raise ProviderTransientError("Connection timed out before the request was sent.") from None
        except requests.ReadTimeout:
            raise ProviderTransientError(
                f"No answer within {self.timeout:g} s; the request may have been applied.",
                may_have_applied=True,
            ) from None
        except requests.ConnectionError as exc:
            if _never_connected(exc):
                raise ProviderTransientError("Could not connect to the provider.") from None
            raise ProviderTransientError(
                "The connection was dropped before an answer arrived; the request may have been applied.",
                may_have_applied=True,
            ) from None
        except requests.RequestException as exc:
            raise ProviderTransientError(f"HTTP error: {type(exc).__name__}") from None
        return ApiResponse(raw.status_code, dict(raw.headers), raw.text)


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return "" if value is None else str(value)


def _never_connected(exc: requests.ConnectionError) -> bool:
    """True when the failure happened while connecting, so nothing was sent."""
    seen = exc
    for _ in range(6):
        if isinstance(seen, (NewConnectionError, NameResolutionError, ConnectionRefusedError)):
            return True
        reason = getattr(seen, "reason", None)
        nxt = reason if reason is not None else (seen.args[0] if getattr(seen, "args", None) else None)
        if not isinstance(nxt, BaseException):
            return False
        seen = nxt
    return False
