"""The generic provider: an account of kind "generic" speaks any REST ticketing API, as its
JSON configuration (`ProviderAccount.api_config`) describes; its secrets are the account's
encrypted credentials.

`GenericProvider` is the kind as the registry lists it (fixed credential fields, no extra
form, no defaults). An account's own class is `GenericProvider.configured(api_config)`: a
subclass whose class-level facts (capabilities, updatable fields, label, maps, …) come from
the configuration, so the rest of the console reads them as for a built-in provider.
The configuration is pure data: templates (providers/generic/template.py) build requests,
response paths read answers, error rules (rules.py) classify them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from django import forms
from django.utils import timezone

from providers.base import CREATE, FETCH, REPLY, TEST, UPDATE, RemoteRef, RemoteReply, RemoteState
from providers.errors import (
    ProviderAuthError,
    ProviderConfigurationError,
    ProviderError,
    ProviderNotFoundError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderTransientError,
    ProviderValidationError,
)
from providers.generic import auth as generic_auth
from providers.generic import rules
from providers.generic.replies import conversation
from providers.generic.schema import (
    MAX_BATCH_SIZE,
    OPERATIONS,
    TOKEN_SCHEMES,
    required_secrets,
    validate_config,
)
from providers.generic.template import (
    OMITTED,
    SECRET_KEYS,
    MergeError,
    TemplateError,
    as_text,
    first_value,
    mapped_value,
    render,
    resolve,
)
from providers.http import REDACTED, ApiRequest, ApiResponse
from providers.tokens import Token, TokenAuthProvider

DEFAULT_LABEL = "the provider"
#: How many configured classes are kept (one per distinct configuration in use).
CONFIGURED_CACHE_SIZE = 256
CREDENTIAL_LABELS = {
    "token": "Token",
    "username": "Username",
    "password": "Password",
    "client_id": "Client id",
    "client_secret": "Client secret",
    "api_key": "API key",
    "signing_key": "Signing key",
}
ERROR_CLASSES = (
    (ProviderAuthError, "auth"),
    (ProviderValidationError, "validation"),
    (ProviderNotFoundError, "not_found"),
    (ProviderRateLimited, "rate_limited"),
    (ProviderResponseError, "response"),
    (ProviderTransientError, "transient"),
    (ProviderError, "provider"),
    (ProviderConfigurationError, "configuration"),
)


@dataclass
class GenericRequest(ApiRequest):
    """An ApiRequest that knows whether it is sent with the account's credentials."""

    authenticated: bool = True


class LazyValues(dict):
    """A context root whose values are worked out only when a template reads them: an unmapped
    status is a configuration error only for a configuration that sends it."""

    def __init__(self, factories: dict | None = None, /, **more) -> None:
        super().__init__()
        self.factories = {**(factories or {}), **more}

    def get(self, key, default=None):
        factory = self.factories.get(key)
        return factory() if factory else default


_configured: OrderedDict[str, type] = OrderedDict()
_configured_lock = threading.Lock()


class GenericProvider(TokenAuthProvider):
    kind = "generic"
    label = "Generic REST API"
    #: For listing the kind only; an account's class has the operations it configures.
    capabilities = frozenset({CREATE, UPDATE, FETCH, REPLY, TEST})
    credential_fields = {
        key: forms.CharField(
            required=False, label=label, help_text="Used where the auth configuration names it."
        )
        for key, label in CREDENTIAL_LABELS.items()
    }
    # An unknown API's limits are not documented anywhere we can read: start cautious, as for
    # the cloud services without a documented limit (Kapture, Particle Space).
    default_rate_limit = 5.0
    default_rate_burst = 10
    #: The account's configuration (empty on the plain kind).
    config: ClassVar[dict[str, Any]] = {}
    #: validate_config(config): an account whose configuration has errors sends nothing.
    config_errors: ClassVar[dict[str, list[str]]] = {}

    # --- the per-account class ------------------------------------------------------------
    @classmethod
    def configured(cls, config: Any) -> type[GenericProvider]:
        """The class for an account with this configuration (cached by its canonical JSON)."""
        config = config if isinstance(config, dict) else {}
        canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
        key = hashlib.sha256(canonical.encode()).hexdigest()
        with _configured_lock:
            found = _configured.get(key)
            if found is not None:
                _configured.move_to_end(key)
                return found
        made = type(f"ConfiguredGenericProvider_{key[:12]}", (cls,), cls._facts(copy.deepcopy(config)))
        with _configured_lock:
            _configured[key] = made
            while len(_configured) > CONFIGURED_CACHE_SIZE:
                _configured.popitem(last=False)
        return made

    @staticmethod
    def _facts(config: dict) -> dict[str, Any]:
        """The class-level facts, read leniently: an invalid configuration still makes a class
        (pages that list accounts keep working); its errors stop every call (__init__)."""
        operations = mapping(config.get("operations"))
        present = {name for name in OPERATIONS if isinstance(operations.get(name), dict)}
        auth = mapping(config.get("auth")) or {"scheme": "none"}
        if TEST not in present and auth.get("scheme") in TOKEN_SCHEMES:
            present.add(TEST)  # the token call is the test
        label = config.get("label") if isinstance(config.get("label"), str) and config.get("label") else None
        label = label or DEFAULT_LABEL
        fields = config.get("updatable_fields")
        batch_size = mapping(operations.get(FETCH)).get("batch_size", 1)
        status_map = mapping(config.get("status_map"))
        lifetime = auth.get("lifetime", 3600)
        return {
            "config": config,
            "config_errors": validate_config(config),
            "label": label,
            "capabilities": frozenset(present),
            "unsupported_reasons": {
                name: f"{capitalized(label)} is configured without {article(name)} {name} request."
                for name in OPERATIONS
                if name not in present
            },
            "updatable_fields": frozenset(f for f in fields if isinstance(f, str))
            if isinstance(fields, list)
            else None,
            "create_is_idempotent": config.get("create_is_idempotent") is True,
            "expects_json": config.get("expects_json", True) is not False,
            "fetch_batch_size": int(min(positive(batch_size, 1), MAX_BATCH_SIZE)),
            "default_status_map": {
                "outbound": mapping(status_map.get("outbound")),
                "inbound": mapping(status_map.get("inbound")),
            },
            "default_priority_map": mapping(config.get("priority_map")),
            "default_token_lifetime": positive(lifetime, 3600),
            "reads_conversation": isinstance(
                mapping(mapping(operations.get(FETCH)).get("response")).get("replies"), dict
            ),
        }

    @classmethod
    def validate_credentials(cls, values: dict[str, Any]) -> dict[str, str]:
        return {
            key: f"The API configuration's auth needs the {CREDENTIAL_LABELS[key].lower()}."
            for key in required_secrets(cls.config.get("auth"))
            if not values.get(key)
        }

    def __init__(self, account, **kwargs) -> None:
        super().__init__(account, **kwargs)
        if not self.config.get("operations"):
            raise ProviderConfigurationError(
                f"The account '{account.name}' has no API configuration: a provider admin must add one."
            )
        if self.config_errors:
            first = next(iter(self.config_errors.values()))[0]
            raise ProviderConfigurationError(
                f"The API configuration of '{account.name}' has errors ({first}); "
                "a provider admin must fix it."
            )
        self._refs: dict[str, tuple[str, str]] = {}

    @property
    def auth(self) -> dict[str, Any]:
        return self.config.get("auth") or {"scheme": "none"}

    @property
    def operations(self) -> dict[str, dict]:
        return self.config.get("operations") or {}

    # --- templates --------------------------------------------------------------------------
    def render(self, value: Any, context: dict[str, Any], *, quote_text: bool = False) -> Any:
        try:
            return render(value, context, quote_text=quote_text)
        except TemplateError as exc:
            raise ProviderConfigurationError(
                f"The API configuration of '{self.account.name}' cannot be used: {exc}"
            ) from None
        except MergeError as exc:  # the ticket's or the account's data, not the configuration
            raise ProviderValidationError(str(exc)) from None

    def base_context(self, operation: str) -> dict[str, Any]:
        return {"settings": dict(self.account.settings or {}), "now": timezone.now(), "operation": operation}

    def auth_context(self) -> dict[str, Any]:
        secrets = {key: self.credentials.get(key) or "" for key in SECRET_KEYS}
        return {**self.base_context("sign_in"), "secrets": secrets}

    def ticket_context(self, operation: str, ticket, **extra: Any) -> dict[str, Any]:
        values = {
            "title": ticket.title,
            "description": ticket.description,
            "description_with_marker": self.description_with_marker(ticket),
            "marker": self.marker(ticket),
            "reference": ticket.reference,
            "requester_email": ticket.requester_email,
            "requester_name": ticket.requester_name,
            "priority": ticket.priority,
            "impact": ticket.impact,
            "status": ticket.status,
            "due_at": ticket.due_at,
            "tags": list(ticket.tags or []),
            "extra": dict(ticket.extra or {}),
            "remote_id": ticket.remote_id,
            "remote_number": ticket.remote_number,
            "remote_url": ticket.remote_url,
            "revision": ticket.revision,
        }
        remote = LazyValues(
            status=lambda: self.remote_status_for(ticket.status),
            priority=lambda: self.remote_priority_for(ticket.priority),
        )
        context = {**self.base_context(operation), "ticket": values, "remote": remote, **extra}
        named = mapping(self.config.get("values"))
        context["values"] = LazyValues(
            {
                name: (lambda template=template: self.named_value(template, context))
                for name, template in named.items()
            }
        )
        return context

    def named_value(self, template: Any, context: dict[str, Any]) -> Any:
        """One of `values`, rendered where it is read; an `optional` one that is empty is null."""
        value = self.render(template, context)
        return None if value is OMITTED else value

    def build(self, operation: str, context: dict[str, Any]) -> GenericRequest:
        spec = self.operations[operation]
        path = self.render(spec["path"], context, quote_text=True)
        query = self.render(spec.get("query") or {}, context)
        if query:
            pairs = {key: v if isinstance(v, list) else as_text(v) for key, v in query.items()}
            path += ("&" if "?" in path else "?") + urlencode(pairs, doseq=True, quote_via=quote)
        headers = {
            name: as_text(value)
            for name, value in {
                **self.render(self.config.get("headers") or {}, context),
                **self.render(spec.get("headers") or {}, context),
            }.items()
        }
        signed = spec.get("auth", True) is not False
        request = GenericRequest(spec.get("method", "POST"), path, headers=headers, authenticated=signed)
        body_type = spec.get("body_type", "json")
        if "body" in spec and body_type != "none":
            body = self.render(spec["body"], context)
            if body is OMITTED:
                body = None
            if body_type == "json":
                request.json = body
            else:
                request.form = {key: as_text(value) for key, value in (body or {}).items()}
                request.multipart = body_type == "multipart"
        return request

    # --- auth -------------------------------------------------------------------------------
    @property
    def uses_token(self) -> bool:
        return self.auth.get("scheme") in TOKEN_SCHEMES

    def authorize(self, request: ApiRequest) -> None:
        if not getattr(request, "authenticated", True):
            return
        if self.uses_token:
            header = self.auth.get("header") or "Authorization"
            request.headers[header] = f"{self.auth.get('prefix', 'Bearer ')}{self.access_token()}"
        else:
            generic_auth.sign(self, request)

    def reauthorize(self) -> bool:
        return super().reauthorize() if self.uses_token else False

    def build_token_request(self, refresh_token: str = "") -> ApiRequest:
        return generic_auth.token_request(self, refresh_token if self.auth.get("refresh", True) else "")

    def parse_token(self, data: Any) -> Token:
        return generic_auth.parse_token(self, data)

    # --- answers ----------------------------------------------------------------------------
    def interpret(self, response: ApiResponse) -> Any:
        data = response.json()
        error = rules.classify(
            self.config.get("errors") or [],
            status=response.status,
            data=data,
            text=response.text,
            headers=response.headers,
            message_paths=self.config.get("error_message"),
        )
        if error is not None:
            raise error
        if data is None and self.expects_json and response.status < 300:
            raise ProviderResponseError(
                f"The provider answered HTTP {response.status} with a body that is not JSON.",
                http_status=response.status,
            )
        return data

    def response_spec(self, operation: str) -> dict[str, Any]:
        return self.operations.get(operation, {}).get("response") or {}

    def mapped(self, data: Any, operation: str, key: str, context: dict[str, Any]) -> Any:
        """The answer's value for response.<key> (a path, a template or a list of them)."""
        try:
            return mapped_value(data, self.response_spec(operation).get(key), context)
        except TemplateError as exc:
            raise ProviderConfigurationError(
                f"The API configuration of '{self.account.name}' cannot be used: {exc}"
            ) from None

    def read_ref(self, data: Any, operation: str, remote_id: str, context: dict[str, Any]) -> RemoteRef:
        return RemoteRef(
            remote_id=remote_id,
            remote_number=as_text(self.mapped(data, operation, "remote_number", context)),
            remote_url=self.absolute_url(as_text(self.mapped(data, operation, "remote_url", context))),
            remote_status=as_text(self.mapped(data, operation, "remote_status", context)),
        )

    def absolute_url(self, url: str) -> str:
        """A ticket link given as a path ("/tickets/7") is on the account's base URL."""
        if url.startswith("/") and not url.startswith("//"):
            return self.account.base_url.rstrip("/") + url
        return url

    # --- the hooks ----------------------------------------------------------------------------
    def build_create(self, ticket) -> ApiRequest:
        return self.build(CREATE, self.ticket_context(CREATE, ticket))

    def parse_create(self, data: Any, ticket) -> RemoteRef:
        spec = self.operations[CREATE]
        context = self.ticket_context(CREATE, ticket)
        remote_id = self.mapped(data, CREATE, "remote_id", context)
        if remote_id is None and spec.get("remote_id_template"):
            remote_id = self.render(spec["remote_id_template"], context) or None
        if remote_id is None or isinstance(remote_id, (dict, list)):
            raise ProviderResponseError(
                f"{capitalized(self.label)} answered success without a ticket id where the API "
                "configuration looks for one (create: response.remote_id)."
            )
        return self.read_ref(data, CREATE, as_text(remote_id), context)

    def build_update(self, ticket) -> ApiRequest:
        return self.build(UPDATE, self.ticket_context(UPDATE, ticket))

    def parse_update(self, data: Any, ticket) -> RemoteRef | None:
        if not self.response_spec(UPDATE):
            return None
        context = self.ticket_context(UPDATE, ticket)
        remote_id = self.mapped(data, UPDATE, "remote_id", context)
        return self.read_ref(
            data, UPDATE, as_text(remote_id) if remote_id is not None else ticket.remote_id, context
        )

    def build_fetch(self, tickets) -> ApiRequest:
        remote_ids = {"remote_ids": [ticket.remote_id for ticket in tickets]}
        return self.build(FETCH, self.ticket_context(FETCH, tickets[0], tickets=remote_ids))

    def parse_fetch(self, data: Any, tickets) -> list[RemoteState]:
        spec = self.response_spec(FETCH)
        if "items" in spec:
            items = resolve(data, spec["items"])
            if not isinstance(items, list):
                raise ProviderResponseError(
                    f"The fetch answer has no list of tickets at '{spec['items']}' (fetch: response.items)."
                )
        else:
            items = [data]
        states = []
        context = self.base_context(FETCH)
        for index, item in enumerate(items):
            remote_id = self.mapped(item, FETCH, "remote_id", context)
            if remote_id is None and len(items) == len(tickets):
                remote_id = tickets[index].remote_id  # answers come in request order
            if remote_id is None or isinstance(remote_id, (dict, list)):
                continue
            remote_id = as_text(remote_id)
            fields = first_value(item, spec["fields"]) if spec.get("fields") else item
            ref = self.read_ref(item, FETCH, remote_id, context)
            # A ticket linked by id (tickets/services.py) reads its number and link from here.
            self._refs[remote_id] = (ref.remote_number, ref.remote_url)
            states.append(
                RemoteState(
                    remote_id,
                    ref.remote_status,
                    fields=fields if isinstance(fields, dict) else {},
                    replies=self.replies_of(item, context),
                )
            )
        return states

    def replies_of(self, item: Any, context: dict[str, Any]) -> list[RemoteReply] | None:
        spec = self.response_spec(FETCH).get("replies")
        if not isinstance(spec, dict):
            return None  # not read: the console has only the replies it sent
        try:
            return conversation(item, spec, context)
        except TemplateError as exc:
            raise ProviderConfigurationError(
                f"The API configuration of '{self.account.name}' cannot be used: {exc}"
            ) from None

    def ref_from_state(self, state: RemoteState) -> RemoteRef:
        number, url = self._refs.get(state.remote_id, ("", ""))
        return RemoteRef(state.remote_id, number, url, state.remote_status)

    def build_reply(self, ticket, text: str) -> ApiRequest:
        return self.build(REPLY, self.ticket_context(REPLY, ticket, reply={"text": text}))

    def build_test(self) -> ApiRequest:
        return self.build(TEST, self.base_context(TEST))

    def test_connection(self) -> str:
        self.require(TEST)
        spec = self.operations.get(TEST)
        if spec is None or spec.get("token_only"):
            self._request_token()  # the token call is the test; nothing is cached
            return (spec or {}).get("message") or f"Connected: {self.label} issued a token."
        accepts = {"not_found": ProviderNotFoundError, "validation": ProviderValidationError}
        accepted = tuple(cls for name, cls in accepts.items() if name in spec.get("accept", []))
        try:
            self.call(self.build_test())
        except accepted:
            pass  # refused for what was asked, so the credentials were accepted
        return spec.get("message") or "Connected."

    # --- try it -----------------------------------------------------------------------------
    def try_operation(self, operation: str, ticket, *, sample_response: Any = None) -> dict[str, Any]:
        """What `operation` sends for `ticket` and what comes of it, for the admin's "Try it".

        `sample_response` — JSON text (status 200), or (text, status), or {"text", "status"} —
        is parsed as if the provider had answered it, and nothing is sent. Without it the
        account's base URL is called for real (SSRF guard, timeout and redaction as always).
        Secrets are masked in the request shown.
        """
        result: dict[str, Any] = {"request": None}
        try:
            self.require(operation)
            # Shown before anything is sent: when the answer is an error, the request is what
            # the admin most needs to see.
            result["request"] = self.shown(self.request_for(operation, ticket))
            if sample_response is None:
                outcome = self.perform(operation, ticket)
            else:
                text, status = sample_parts(sample_response)
                outcome = self.parse(operation, ticket, self.interpret(ApiResponse(status, {}, text)))
            result["result"] = outcome
        except (ProviderError, ProviderConfigurationError) as exc:
            result["error"] = describe_error(exc, self.redactor)
        return result

    def shown(self, request: ApiRequest) -> dict[str, Any]:
        """`request` as the admin sees it: signed as it is sent, secrets masked."""
        if isinstance(request, GenericRequest) and request.authenticated:
            self.shown_signed(request)
        url, headers, body = self.http.describe(request)
        return {"method": request.method, "url": url, "headers": headers, "body": body}

    def shown_signed(self, request: GenericRequest) -> None:
        """`request` as it is sent, credentials included (the Redactor masks them when shown);
        a token is never requested just to be shown."""
        if self.uses_token:
            header = self.auth.get("header") or "Authorization"
            request.headers[header] = f"{self.auth.get('prefix', 'Bearer ')}{REDACTED}"
        else:
            generic_auth.sign(self, request)

    def request_for(self, operation: str, ticket) -> ApiRequest:
        if operation == TEST:
            spec = self.operations.get(TEST)
            if spec is None or spec.get("token_only"):
                return self.build_token_request()
            return self.build_test()
        if operation == FETCH:
            return self.build_fetch([ticket])
        if operation == REPLY:
            return self.build_reply(ticket, REPLY_SAMPLE)
        return self.build(operation, self.ticket_context(operation, ticket))

    def perform(self, operation: str, ticket) -> Any:
        if operation == CREATE:
            return asdict(self.create(ticket))
        if operation == UPDATE:
            ref = self.update(ticket)
            return asdict(ref) if ref else {"updated": True}
        if operation == FETCH:
            return [asdict(state) for state in self.fetch([ticket])]
        if operation == REPLY:
            self.reply(ticket, REPLY_SAMPLE)
            return {"sent": True}
        return {"message": self.test_connection()}

    def parse(self, operation: str, ticket, data: Any) -> Any:
        if operation == CREATE:
            return asdict(self.parse_create(data, ticket))
        if operation == UPDATE:
            ref = self.parse_update(data, ticket)
            return asdict(ref) if ref else {"updated": True}
        if operation == FETCH:
            return [asdict(state) for state in self.parse_fetch(data, [ticket])]
        if operation == REPLY:
            return {"sent": True}
        spec = self.operations.get(TEST) or {}
        if spec.get("token_only") or not spec:
            token = self.parse_token(data)
            if not token.access_token:
                raise ProviderTransientError("The token answer has no access token.")
        return {"message": spec.get("message") or "Connected."}


REPLY_SAMPLE = "This is a test reply from Ticket Console."


def mapping(value: Any) -> dict:
    return dict(value) if isinstance(value, dict) else {}


def capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def positive(value: Any, default: float) -> float:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else default


def sample_parts(sample: Any) -> tuple[str, int]:
    if isinstance(sample, dict):
        return str(sample.get("text") or ""), int(sample.get("status") or 200)
    if isinstance(sample, (tuple, list)):
        return str(sample[0]), int(sample[1])
    return str(sample), 200


def describe_error(exc: Exception, redactor) -> dict[str, Any]:
    name = next((label for cls, label in ERROR_CLASSES if isinstance(exc, cls)), "error")
    if isinstance(exc, ProviderTransientError) and not isinstance(exc, ProviderResponseError):
        name = "transient_applied" if exc.may_have_applied else "transient"
    described: dict[str, Any] = {"class": name, "message": redactor.text(getattr(exc, "message", str(exc)))}
    if isinstance(exc, ProviderValidationError) and exc.field_errors:
        described["field_errors"] = exc.field_errors
    return described
