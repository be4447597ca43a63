"""The provider flow, written once. Vendor modules fill in small hooks.

Like django-anymail's backends: `Provider` owns create/update/fetch/reply/test (auth,
sending, reading the answer, classifying failures); a vendor subclass declares endpoints
as constants and implements pure hooks that build `ApiRequest`s from tickets and parse
answers. Hooks do no I/O, so they are unit-tested on the seed examples alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from django import forms

from providers import callback_secret
from providers.bounds import rate_burst_problem, rate_limit_problem, timeout_problem
from providers.errors import (
    ProviderConfigurationError,
    ProviderError,
    ProviderNotFoundError,
    ProviderResponseError,
    ProviderTransientError,
    ProviderValidationError,
)
from providers.http import ApiRequest, ApiResponse, Exchange, HttpClient, Redactor, error_for_status
from providers.inbound import InboundHandler
from providers.ticket_input import AttachmentLike, TicketLike
from providers.vocabulary import field_label

if TYPE_CHECKING:
    from providers.models import ProviderAccount

CREATE, UPDATE, FETCH, REPLY, TEST = "create", "update", "fetch", "reply", "test"


@dataclass(frozen=True)
class RemoteRef:
    """Where a ticket lives remotely, as a create answer tells it."""

    remote_id: str
    remote_number: str = ""
    remote_url: str = ""
    remote_status: str = ""


@dataclass(frozen=True)
class RemoteReply:
    """One message of a ticket's conversation as the provider's read answer shows it."""

    #: The provider's id of the message, unique within the ticket (a digest where it has none).
    remote_id: str
    body: str
    #: Who wrote it, as the provider names them ("" when it does not say).
    author: str = ""
    #: True when one of the provider's own agents wrote it; False for the requester's side
    #: (which includes the replies the console itself posted).
    by_provider_staff: bool = False
    #: The provider's own time text, shown as given (its time zone is not documented).
    date: str = ""


@dataclass
class RemoteState:
    """A ticket as read back from the provider."""

    remote_id: str
    remote_status: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    #: The ticket's conversation, oldest first, where the read answer carries it; None where
    #: it does not (the console then has only the replies it sent).
    replies: list[RemoteReply] | None = None


class Provider:
    kind: ClassVar[str]
    label: ClassVar[str]
    #: Operations this API supports: a subset of create, update, fetch, reply, test.
    capabilities: ClassVar[frozenset[str]] = frozenset()
    #: Why an operation is missing, in words a support agent understands.
    unsupported_reasons: ClassVar[dict[str, str]] = {}
    #: The console fields an update carries (None: all of them). A change to any other field
    #: of a created ticket stays in the console, shown as "kept here only".
    updatable_fields: ClassVar[frozenset[str] | None] = None
    #: Credential form fields (all write-only); every value is treated as a secret.
    credential_fields: ClassVar[dict[str, forms.Field]] = {}
    #: The provider's own ticket fields (stored in Ticket.extra), validated before sending.
    extra_form: ClassVar[type[forms.Form] | None] = None
    #: {"outbound": {console status: remote}, "inbound": {remote: console status}}
    default_status_map: ClassVar[dict[str, dict[str, str]]] = {"outbound": {}, "inbound": {}}
    #: {console priority: remote priority}
    default_priority_map: ClassVar[dict[str, Any]] = {}
    #: True when resending a create whose outcome is unknown cannot duplicate the ticket.
    create_is_idempotent: ClassVar[bool] = False
    #: True when files travel with the create (Keliweb inline, Motadata by upload).
    accepts_attachments: ClassVar[bool] = False
    #: True when build_test() asks for a ticket that cannot exist (no ping endpoint), so
    #: "not found" proves the credentials were accepted.
    test_probe_is_missing_ticket: ClassVar[bool] = False
    #: How many tickets one fetch call may carry.
    fetch_batch_size: ClassVar[int] = 1
    #: How the provider posts status changes to an address we give it, which carries the
    #: account's callback secret (providers/inbound.py, providers/callback_secret.py); None
    #: when it does not call back.
    inbound: ClassVar[InboundHandler | None] = None
    #: True when parse_fetch returns the ticket's conversation (RemoteState.replies).
    reads_conversation: ClassVar[bool] = False
    #: Non-secret account settings of the sandbox's demo account (providers/demo.py) and the
    #: keys the account form offers in its Defaults table.
    demo_settings: ClassVar[dict[str, Any]] = {}
    #: The rate limit (requests/s) and burst a new account of this kind starts with (the
    #: admin's add form, an import without them, the demo accounts); stored accounts keep
    #: theirs. Each vendor's docstring says where its figures come from.
    default_rate_limit: ClassVar[float] = 10.0
    default_rate_burst: ClassVar[int] = 20

    def __init__(
        self,
        account: ProviderAccount,
        *,
        on_exchange: Callable[[Exchange], None] | None = None,
        on_upload: Callable[[AttachmentLike, str], None] | None = None,
    ) -> None:
        self.account = account
        #: Told each file the adapter uploaded ahead of a create, with the provider's reference
        #: for it: the console stores the reference so a retried create reuses the upload.
        #: Adapters never write to the database themselves.
        self.on_upload = on_upload
        # A stored value outside the bounds (written around the form and the import) is a
        # configuration error before anything is sent: 1/rate would overflow, and requests
        # refuses a zero timeout only once the call is already being recorded as sent.
        for problem in (
            rate_limit_problem(account.rate_limit),
            rate_burst_problem(account.rate_burst),
            timeout_problem(account.timeout),
        ):
            if problem:
                raise ProviderConfigurationError(
                    f"The account '{account.name}' cannot be used: {problem} Fix it under Limits."
                )
        self.credentials = account.get_credentials()
        self.redactor = Redactor({str(v) for v in self.credentials.values() if v})
        if self.inbound is not None and account.callback_secret_set_at:
            # The callback secret travels inside the callback address: kept out of records.
            for secret in callback_secret.every_stored(account):
                self.redactor.add(secret)
        self.http = HttpClient(
            base_url=account.base_url,
            timeout=account.timeout,
            account_id=account.pk,
            redactor=self.redactor,
            on_exchange=on_exchange,
        )

    # --- the flow --------------------------------------------------------------------
    def create(self, ticket: TicketLike) -> RemoteRef:
        self.require(CREATE)
        return self.parse_create(self.call(self.build_create(ticket)), ticket)

    def update(self, ticket: TicketLike) -> RemoteRef | None:
        self.require(UPDATE)
        return self.parse_update(self.call(self.build_update(ticket)), ticket)

    def fetch(self, tickets: list[TicketLike]) -> list[RemoteState]:
        self.require(FETCH)
        states: list[RemoteState] = []
        for start in range(0, len(tickets), self.fetch_batch_size):
            batch = tickets[start : start + self.fetch_batch_size]
            states.extend(self.parse_fetch(self.call(self.build_fetch(batch)), batch))
        return states

    def reply(self, ticket: TicketLike, text: str) -> None:
        self.require(REPLY)
        self.call(self.build_reply(ticket, text))

    def test_connection(self) -> str:
        """Authenticate and make the cheapest call; returns what the provider said."""
        self.require(TEST)
        try:
            data = self.call(self.build_test())
        except ProviderNotFoundError:
            if not self.test_probe_is_missing_ticket:
                raise
            data = None  # the probed id does not exist, but the credentials were accepted
        return self.parse_test(data)

    def call(self, request: ApiRequest) -> Any:
        """Send with auth; re-authenticate once on a 401 where the provider uses tokens."""
        self.authorize(request)
        response = self.http.send(request)
        if response.status == 401 and self.reauthorize():
            self.authorize(request)
            response = self.http.send(request)
        return self.interpret(response)

    def interpret(self, response: ApiResponse) -> Any:
        data = response.json()
        if response.status >= 300:  # 3xx too: redirects are not followed (providers/http.py)
            error = error_for_status(response.status, self.error_message(data, response), response.headers)
            if isinstance(error, ProviderValidationError) and not error.field_errors:
                error.field_errors = self.field_errors(data, response)
            raise error
        self.check_body(data)
        if data is None and self.expects_json:
            raise ProviderResponseError(
                f"The provider answered HTTP {response.status} with a body that is not JSON.",
                http_status=response.status,
            )
        return data

    def require(self, operation: str) -> None:
        if operation not in self.capabilities:
            raise ProviderConfigurationError(self.reason_unsupported(operation))

    @classmethod
    def reason_unsupported(cls, operation: str) -> str:
        return cls.unsupported_reasons.get(
            operation, f"{cls.label} does not support the '{operation}' operation."
        )

    @classmethod
    def supports(cls, operation: str) -> bool:
        return operation in cls.capabilities

    @classmethod
    def fields_kept_here(cls, changed) -> list[str]:
        """Of the `changed` console fields of a created ticket, those no update can carry."""
        if not cls.supports(UPDATE):
            return sorted(changed)
        if cls.updatable_fields is None:
            return []
        return sorted(name for name in changed if name not in cls.updatable_fields)

    @classmethod
    def reason_kept_here(cls, fields) -> str:
        """Why changes to `fields` of a created ticket stay in the console."""
        if not cls.supports(UPDATE) or not fields:
            return cls.reason_unsupported(UPDATE)
        names = [field_label(name) for name in fields]
        listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
        return f"{cls.label} cannot change the {listed} of a ticket after it is created."

    @classmethod
    def validate_credentials(cls, values: dict[str, Any]) -> dict[str, str]:
        """Errors by credential key for a complete credential set; by default all are needed."""
        return {
            key: f"{cls.label} needs this credential." for key in cls.credential_fields if not values.get(key)
        }

    @classmethod
    def validate_ticket(cls, fields: dict[str, Any]) -> dict[str, list[str]]:
        """Errors by console ticket field that this provider would refuse (checked before saving)."""
        return {}

    def preview(self, ticket: TicketLike) -> dict[str, Any]:
        """The request that syncing `ticket` would send now, secrets masked. No I/O."""
        if ticket.remote_id and not self.supports(UPDATE):
            raise ProviderConfigurationError(self.reason_unsupported(UPDATE))
        request = self.build_update(ticket) if ticket.remote_id else self.build_create(ticket)
        url, headers, body = self.http.describe(request)
        return {"method": request.method, "url": url, "headers": headers, "body": body}

    # --- hooks: auth --------------------------------------------------------------------
    expects_json: ClassVar[bool] = True

    def authorize(self, request: ApiRequest) -> None:
        """Add auth headers to `request` (token providers may fetch a token here)."""

    def reauthorize(self) -> bool:
        """Drop a cached token after a 401; True when a retry with a new one makes sense."""
        return False

    def credential(self, key: str) -> str:
        value = self.credentials.get(key)
        if not value:
            raise ProviderConfigurationError(
                f"The account '{self.account.name}' has no '{key}' credential set."
            )
        return str(value)

    # --- hooks: pure payload builders and parsers ----------------------------------------
    def build_create(self, ticket: TicketLike) -> ApiRequest:
        raise NotImplementedError

    def parse_create(self, data: Any, ticket: TicketLike) -> RemoteRef:
        raise NotImplementedError

    def build_update(self, ticket: TicketLike) -> ApiRequest:
        raise NotImplementedError

    def parse_update(self, data: Any, ticket: TicketLike) -> RemoteRef | None:
        return None

    def build_fetch(self, tickets: list[TicketLike]) -> ApiRequest:
        raise NotImplementedError

    def parse_fetch(self, data: Any, tickets: list[TicketLike]) -> list[RemoteState]:
        raise NotImplementedError

    def ref_from_state(self, state: RemoteState) -> RemoteRef:
        """Where a ticket read back lives (a person linking an id found at the provider)."""
        return RemoteRef(remote_id=state.remote_id, remote_status=state.remote_status)

    def build_reply(self, ticket: TicketLike, text: str) -> ApiRequest:
        raise NotImplementedError

    def build_test(self) -> ApiRequest:
        raise NotImplementedError

    def parse_test(self, data: Any) -> str:
        return "Connected."

    def check_body(self, data: Any) -> None:
        """Raise the right ProviderError when a 2xx body reports a failure."""

    def field_errors(self, data: Any, response: ApiResponse | None) -> dict[str, list[str]]:
        """A refusal's errors by console field name ("__all__" for the rest), read from the
        error body (`response` is None for a failure reported in a 2xx body). `interpret`
        attaches them to the ProviderValidationError of a 4xx answer; forms show them."""
        return {}

    def error_message(self, data: Any, response: ApiResponse) -> str:
        """The provider's own words for a failed call."""
        if isinstance(data, dict):
            for key in ("message", "userMessage", "error", "errorMessage"):
                value = data.get(key)
                if isinstance(value, str) and value:
                    return value
        text = response.text.strip()
        return f"HTTP {response.status}: {text[:200]}" if text else f"HTTP {response.status}"

    # --- helpers for vendor hooks --------------------------------------------------------
    def setting(self, key: str, default: Any = None) -> Any:
        return (self.account.settings or {}).get(key, default)

    def status_map(self) -> dict[str, dict[str, str]]:
        configured = self.account.status_map or {}
        return {
            "outbound": configured.get("outbound") or self.default_status_map["outbound"],
            "inbound": configured.get("inbound") or self.default_status_map["inbound"],
        }

    def remote_status_for(self, console_status: str) -> str:
        outbound = self.status_map()["outbound"]
        if console_status not in outbound:
            raise ProviderConfigurationError(
                f"The status map of '{self.account.name}' has no {self.label} value for "
                f"the console status '{console_status}'."
            )
        return outbound[console_status]

    def console_status_for(self, remote_status: str) -> str | None:
        return self.status_map()["inbound"].get(remote_status)

    def remote_priority_for(self, console_priority: str) -> Any:
        priorities = self.account.priority_map or self.default_priority_map
        return priorities.get(console_priority, self.default_priority_map.get(console_priority))

    @staticmethod
    def stored_attachments(ticket: TicketLike) -> list[AttachmentLike]:
        """The ticket's attachments (none for an unsaved ticket: previews, unit tests)."""
        return list(ticket.attachments.all()) if ticket.pk else []

    def uploaded(self, attachment: AttachmentLike, ref: str) -> None:
        """Record that `attachment` now lives at the provider as `ref` (see on_upload)."""
        attachment.remote_ref = ref
        if self.on_upload is not None:
            self.on_upload(attachment, ref)

    @staticmethod
    def marker(ticket: TicketLike) -> str:
        """The console reference written into remote tickets, to find them again."""
        return f"[Ticket Console {ticket.reference}]"

    def description_with_marker(self, ticket: TicketLike) -> str:
        text = (ticket.description or "").rstrip()
        return f"{text}\n\n{self.marker(ticket)}" if text else self.marker(ticket)

    @staticmethod
    def format_datetime(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
        return value.strftime(fmt) if value else ""


def lenient_get(data: Any, *paths: str) -> Any:
    """The first non-empty value at any dotted path of `data` (for loosely documented bodies)."""
    for path in paths:
        value = data
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value not in (None, ""):
            return value
    return None


__all__ = [
    "CREATE",
    "FETCH",
    "REPLY",
    "TEST",
    "UPDATE",
    "ApiRequest",
    "Provider",
    "ProviderError",
    "ProviderTransientError",
    "RemoteRef",
    "RemoteReply",
    "RemoteState",
    "lenient_get",
]
