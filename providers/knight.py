"""ChatOps Knight, Kyndryl (docs/providers.md §1; seed 000; the public SDK chatops-knight-js).

Knight has no token endpoint: every ticket call carries the source id and a fresh HS256 JWT
signed with the raw source token (claims: source id, ticketId, callbackAddress, timestamp),
built in `authorize()` from the request body. The caller chooses `ticketId`: the console
sends its own reference (TC-000123), so resending a create whose answer was lost cannot
make a second ticket (`create_is_idempotent`). There is no read-back and no comment
endpoint; status may come back only through `callbackAddress`.

Assumed where the sources are silent (2026-11):
- Errors have LoopBack 4's shape `{"error": {"statusCode", "name", "message", "details":
  [{"path", "code", "message", "info"}]}}`; AJV puts a missing property in
  `info.missingProperty` with an empty `path`, a bad value under `path` ("/ticketPriority").
- updateTicket answers `true` (docs/providers.md §1); its SDK doc shows `{"success": true, ...}`,
  so both count as success, and `false` or `{"success": false}` as a refusal.
- `/ping` takes no auth (LoopBack's default app; the SDK sends none), so the connection
  test also sends a signed initiateTicket with nothing but a `ticketId`: LoopBack
  authenticates before it validates a body, so 401 means bad credentials and a validation
  refusal means they were accepted; an incomplete body can create nothing.
- The ticket's title has no Knight field: it heads `ticketDesc` and goes into
  `additionalProperties` with the other console fields Knight has no place for.
- initiateTicket takes no status: a ticket is NEW in Knight until its first update.
- No rate limit is documented: new accounts get the console's default, 10 requests/s with a
  burst of 20 (`default_rate_limit`, `default_rate_burst`); a 429 is honoured if it comes.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import jwt
from django import forms

from console.jsonguard import GuardedJSONField
from providers import callback_secret
from providers.base import CREATE, TEST, UPDATE, Provider, RemoteRef
from providers.errors import (
    ProviderConfigurationError,
    ProviderResponseError,
    ProviderValidationError,
)
from providers.http import ApiRequest, ApiResponse
from providers.inbound import InboundChange, InboundHandler

#: The source id the sandbox accepts; not a secret (the source token is).
SANDBOX_SOURCE_ID = "ticket-console-sandbox"
SANDBOX_ACCOUNT_CODE = "ticket-console-demo"
DEFAULT_APPLICATION_NAME = "Ticket Console"
PROBE_TICKET_ID = "TICKET-CONSOLE-CONNECTION-TEST"
STATUSES = (
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
)
IMPACTS = {"high": "High", "medium": "Medium", "low": "Low"}
#: Knight's body fields -> the console's ticket or extra-form fields, for field errors.
CONSOLE_FIELDS = {
    "accountCodeLocators": "account_code_locators",
    "environment": "environment",
    "eventId": "event_id",
    "ticketDesc": "description",
    "ticketPriority": "priority",
    "ticketImpact": "impact",
    "ticketType": "ticket_type",
    "ticketAssignmentGroups": "assignment_groups",
    "callbackAddress": "callback_address",
    "status": "status",
}
BLANK = (None, "", [], {})


def locator_problem(value: Any) -> str | None:
    """Why `value` is not a list of {"SearchKey", "SearchValue"} string pairs, or None."""
    if not isinstance(value, list) or not value:
        return 'Give a JSON list of objects like [{"SearchKey": "accountCode", "SearchValue": "acme"}].'
    for number, item in enumerate(value, 1):
        if not isinstance(item, dict) or set(item) != {"SearchKey", "SearchValue"}:
            return f'Locator {number} must be an object with exactly the keys "SearchKey" and "SearchValue".'
        if not all(isinstance(item[key], str) and item[key].strip() for key in item):
            return f'Locator {number}: "SearchKey" and "SearchValue" must be non-empty text.'
    return None


class StringListField(forms.Field):
    """A list of strings: a JSON list, or text separated by commas or new lines."""

    def to_python(self, value: Any) -> list[str]:
        if value in BLANK:
            return []
        if isinstance(value, str):
            return [part.strip() for part in value.replace("\n", ",").split(",") if part.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise forms.ValidationError("Give the assignment groups as a list of names (text).")
        return [v.strip() for v in value]


class KnightTicketForm(forms.Form):
    """Knight's own ticket fields, kept in Ticket.extra; blanks come from the account settings."""

    account_code_locators = GuardedJSONField(
        required=False,
        label="Account code locators",
        help_text='How Knight finds the account, e.g. [{"SearchKey": "accountCode", "SearchValue": "acme"}].',
    )
    environment = forms.CharField(required=False, max_length=100, help_text='e.g. "Prod".')
    event_id = forms.CharField(required=False, max_length=200, label="Event id")
    ticket_type = forms.CharField(required=False, max_length=100, help_text='Default "Incident".')
    assignment_groups = StringListField(required=False, help_text="Comma-separated group names.")
    callback_address = forms.URLField(
        required=False,
        assume_scheme="https",
        help_text="Where Knight posts status changes back. Leave blank for the console's own.",
    )
    ticket_priority = forms.IntegerField(
        required=False,
        label="Knight priority",
        help_text="1 (highest) to 4 (lowest); overrides the ticket's priority.",
        error_messages={"invalid": "Knight priorities are whole numbers from 1 (highest) to 4 (lowest)."},
    )

    def clean_account_code_locators(self) -> list | None:
        value = self.cleaned_data.get("account_code_locators")
        if value in BLANK:
            return None
        problem = locator_problem(value)
        if problem:
            raise forms.ValidationError(problem)
        return value

    def clean_ticket_priority(self) -> int | None:
        value = self.cleaned_data.get("ticket_priority")
        if value is not None and not 1 <= value <= 4:
            raise forms.ValidationError("Knight priorities run from 1 (highest) to 4 (lowest).")
        return value


class KnightCallbacks(InboundHandler):
    """Knight posts to the callbackAddress a ticket was created with. The payload is
    undocumented (docs/providers.md §1): a body is applied when it carries a `ticketId` (our
    reference, which Knight echoes) and a `status` in Knight's words."""

    route = "knight"

    def parse(self, payload: dict[str, Any]) -> InboundChange | None:
        reference = str(payload.get("ticketId") or "").strip()
        if not reference:
            return None
        return InboundChange(reference=reference, status=str(payload.get("status") or "").strip())


class KnightProvider(Provider):
    kind = "knight"
    label = "ChatOps Knight"
    capabilities = frozenset({CREATE, UPDATE, TEST})
    # Requester, tags and due date travel only in the create's additionalProperties.
    updatable_fields = frozenset({"title", "description", "priority", "impact", "status", "extra"})
    unsupported_reasons = {
        "fetch": "Knight has no read-back endpoint; status only comes back via its callback.",
        "reply": "Knight takes no comments or replies.",
    }
    credential_fields = {
        "source_token": forms.CharField(
            label="Source token",
            help_text="The secret Knight issued for your source id; it signs every request. "
            "The source id itself is an account setting.",
        ),
    }
    demo_settings = {
        "source_id": SANDBOX_SOURCE_ID,
        "environment": "Sandbox",
        "account_code_locators": [{"SearchKey": "accountCode", "SearchValue": SANDBOX_ACCOUNT_CODE}],
        "event_id": "ticket-console",
        "application_name": DEFAULT_APPLICATION_NAME,
    }
    extra_form = KnightTicketForm
    default_status_map = {
        "outbound": {
            "new": "NEW",
            "open": "OPEN",
            "in_progress": "INPROGRESS",
            "on_hold": "HOLD",
            "pending": "PENDING",
            "resolved": "RESOLVE",
            "closed": "CLOSE",
            "cancelled": "CANCEL",
        },
        "inbound": {
            "NEW": "new",
            "DISCOVERY": "open",
            "OPEN": "open",
            "INPROGRESS": "in_progress",
            "REOPEN": "open",
            "HOLD": "on_hold",
            "PENDING": "pending",
            "RESOLVE": "resolved",
            "CLOSE": "closed",
            "CANCEL": "cancelled",
        },
    }
    default_priority_map = {"urgent": 1, "high": 2, "medium": 3, "low": 4}
    create_is_idempotent = True
    inbound = KnightCallbacks()

    PING_PATH = "/ping"  # at the root, not under the API root path (the SDK's Config.js)
    ROOT_PATH = "/api/v1"  # the SDK's default; an account may set `root_path`
    CREATE_ENDPOINT = "initiateTicket"
    UPDATE_ENDPOINT = "updateTicket"

    # --- auth: headers on every call ----------------------------------------------------
    def authorize(self, request: ApiRequest) -> None:
        request.headers["X-Application-Name"] = self.setting("application_name") or DEFAULT_APPLICATION_NAME
        request.headers.setdefault("X-Transaction-Id", str(uuid.uuid4()))
        if request.method == "GET":
            return  # /ping takes no auth
        body = request.json if isinstance(request.json, dict) else {}
        source_id = self.required_setting("source_id", "source id")
        claims: dict[str, Any] = {"X-Chatops-Source-Id": source_id, "ticketId": body.get("ticketId")}
        # 2026-11: the SDK signs `callbackAddress: payload.callbackAddress`; JSON drops it when
        # undefined, so the claim is there only when the body has one.
        if body.get("callbackAddress"):
            claims["callbackAddress"] = body["callbackAddress"]
        claims["timestamp"] = self.signing_time().isoformat(timespec="seconds")
        token = jwt.encode(claims, self.credential("source_token"), algorithm="HS256")
        self.redactor.add(token)
        request.headers["X-Chatops-Source-Id"] = source_id
        request.headers["X-Chatops-Source-Api-Token"] = token

    @staticmethod
    def signing_time() -> datetime:
        """Now, with the local UTC offset (the SDK signs moment().format())."""
        return datetime.now().astimezone()

    @staticmethod
    def transaction_id(ticket, operation: str) -> str:
        """Stable per ticket revision and operation, so a retried call carries the same id."""
        return str(
            uuid.uuid5(
                uuid.NAMESPACE_URL, f"ticket-console:knight:{ticket.reference}:{ticket.revision}:{operation}"
            )
        )

    def ticket_fields(self, ticket) -> dict[str, Any]:
        """What initiateTicket and updateTicket both carry: the full state of the ticket."""
        fields = {
            **self.account_fields(ticket),
            "ticketDesc": f"{ticket.title}\n\n{self.description_with_marker(ticket)}",
            "ticketPriority": self.knight_priority(ticket),
            "ticketType": self.value(ticket, "ticket_type") or "Incident",
        }
        if ticket.impact:
            fields["ticketImpact"] = IMPACTS.get(ticket.impact, ticket.impact)
        if groups := self.value(ticket, "assignment_groups"):
            fields["ticketAssignmentGroups"] = groups
        return fields

    # --- create --------------------------------------------------------------------------
    def build_create(self, ticket) -> ApiRequest:
        payload = {"ticketId": ticket.reference, **self.ticket_fields(ticket)}
        if callback := self.callback_address(ticket):
            payload["callbackAddress"] = callback
        additional = {
            "consoleReference": ticket.reference,
            "title": ticket.title,
            "requesterEmail": ticket.requester_email,
            "requesterName": ticket.requester_name,
            "tags": list(ticket.tags or []),
            "dueAt": ticket.due_at.isoformat() if ticket.due_at else "",
        }
        payload["additionalProperties"] = {k: v for k, v in additional.items() if v not in BLANK}
        return self.knight_request(self.CREATE_ENDPOINT, payload, self.transaction_id(ticket, CREATE))

    def parse_create(self, data: Any, ticket) -> RemoteRef:
        if not (isinstance(data, dict) and data.get("success") is True):
            raise ProviderResponseError('Knight answered initiateTicket without "success": true.')
        # The ticketId is ours; Knight returns no id, number or link of its own.
        return RemoteRef(remote_id=ticket.reference, remote_number=ticket.reference)

    # --- update (full state each time: a retry re-applies the same values) -----------------
    def build_update(self, ticket) -> ApiRequest:
        payload = {
            "ticketId": ticket.remote_id or ticket.reference,
            "status": self.remote_status_for(ticket.status),
            **self.ticket_fields(ticket),
        }
        return self.knight_request(self.UPDATE_ENDPOINT, payload, self.transaction_id(ticket, UPDATE))

    def parse_update(self, data: Any, ticket) -> RemoteRef | None:
        if data is True or (isinstance(data, dict) and data.get("success") is True):
            return None
        raise ProviderResponseError(f"Knight answered updateTicket with {str(data)[:100]!r}, not true.")

    # --- test ----------------------------------------------------------------------------
    def build_test(self) -> ApiRequest:
        return ApiRequest("GET", self.PING_PATH)

    def parse_test(self, data: Any) -> str:
        if not (isinstance(data, dict) and data.get("greeting")):
            raise ProviderResponseError("The /ping answer has no greeting: is this a Knight server?")
        return str(data["greeting"])

    def test_connection(self) -> str:
        self.require(TEST)
        greeting = self.parse_test(self.call(self.build_test()))
        # /ping proves only that the server answers. A signed initiateTicket carrying nothing
        # but a ticketId proves the source id and token: 401 if wrong, a validation refusal
        # (and never a ticket) if right.
        probe = self.knight_request(self.CREATE_ENDPOINT, {"ticketId": PROBE_TICKET_ID}, str(uuid.uuid4()))
        try:
            self.call(probe)
        except ProviderValidationError:
            pass
        return f"Connected: Knight answered /ping ({greeting}) and accepted the source id and token."

    # --- errors --------------------------------------------------------------------------
    def check_body(self, data: Any) -> None:
        if isinstance(data, dict) and data.get("success") is False:
            raw = data.get("errorMessage")
            messages = [str(m) for m in (raw if isinstance(raw, list) else [raw]) if m not in BLANK]
            messages = messages or ["Knight refused the request without saying why."]
            field_errors: dict[str, list[str]] = {}
            for message in messages:
                named = [field for name, field in CONSOLE_FIELDS.items() if name in message]
                for field in named or ["__all__"]:
                    field_errors.setdefault(field, []).append(message)
            raise ProviderValidationError("; ".join(messages), field_errors=field_errors)
        if data is False:
            raise ProviderValidationError("Knight answered false: it did not apply the update.")

    def error_message(self, data: Any, response: ApiResponse) -> str:
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict):
            details = [self.detail_text(d) for d in error.get("details") or [] if isinstance(d, dict)]
            if details:
                return "Knight refused the request: " + "; ".join(details)
            return str(error.get("message") or error.get("name") or f"HTTP {response.status}")
        if isinstance(error, str) and error:
            return error
        return super().error_message(data, response)

    def field_errors(self, data: Any, response: ApiResponse | None = None) -> dict[str, list[str]]:
        """LoopBack's `details` on the console's field names; the rest under __all__."""
        error = data.get("error") if isinstance(data, dict) else None
        details = error.get("details") if isinstance(error, dict) else None
        field_errors: dict[str, list[str]] = {}
        for detail in details if isinstance(details, list) else []:
            if isinstance(detail, dict):
                field = CONSOLE_FIELDS.get(self.detail_field(detail), "__all__")
                field_errors.setdefault(field, []).append(self.detail_text(detail))
        return field_errors

    @staticmethod
    def detail_field(detail: dict) -> str:
        """The top-level body field a LoopBack detail is about."""
        # 2026-11: AJV 8 writes paths as "/a/0", AJV 6 (older LoopBack) as ".a[0]".
        path = str(detail.get("path") or "").replace("[", "/").replace(".", "/").strip("/")
        if path:
            return path.split("/")[0]
        info = detail.get("info") if isinstance(detail.get("info"), dict) else {}
        return str(info.get("missingProperty") or "")

    @staticmethod
    def detail_text(detail: dict) -> str:
        path = str(detail.get("path") or "").strip("/.").replace("/", ".")
        message = str(detail.get("message") or detail.get("code") or "invalid")
        return f"{path}: {message}" if path else message

    # --- helpers -------------------------------------------------------------------------
    def knight_request(self, endpoint: str, payload: dict, transaction_id: str) -> ApiRequest:
        root = str(self.setting("root_path") or self.ROOT_PATH).strip("/")
        path = f"/{root}/{endpoint}" if root else f"/{endpoint}"
        return ApiRequest("POST", path, json=payload, headers={"X-Transaction-Id": transaction_id})

    def callback_address(self, ticket) -> str:
        """The ticket's own callback address; else, with `callback_base_url` set, the console's,
        built now from the account's current secret (never stored: it carries the secret);
        else the account's fixed `callback_address` setting, if any."""
        own = (ticket.extra or {}).get("callback_address")
        if own not in BLANK:
            return str(own)
        base_url = self.setting("callback_base_url")
        if base_url in BLANK:
            return str(self.setting("callback_address") or "")
        secret = callback_secret.current(self.account)
        if not secret:
            raise ProviderConfigurationError(
                f"The account '{self.account.name}' has a callback_base_url but no callback secret: "
                'use "Rotate callback secret" on the account, then retry.'
            )
        return callback_secret.address(self.account, base_url=str(base_url), secret=secret)

    def value(self, ticket, key: str) -> Any:
        """The ticket's own Knight field, else the account's default."""
        value = (ticket.extra or {}).get(key)
        return self.setting(key) if value in BLANK else value

    def account_fields(self, ticket) -> dict[str, Any]:
        """The three fields Knight requires on every ticket call."""
        missing = [
            label
            for key, label in (
                ("account_code_locators", "account code locators"),
                ("environment", "environment"),
                ("event_id", "event id"),
            )
            if self.value(ticket, key) in BLANK
        ]
        if missing:
            raise ProviderConfigurationError(
                f"Knight needs the {' and '.join(missing)}: the ticket gives none and the account "
                f"'{self.account.name}' has no default. Set them in the account's settings "
                "(account_code_locators, environment, event_id) or in the ticket's Knight fields."
            )
        return {
            "accountCodeLocators": self.value(ticket, "account_code_locators"),
            "environment": self.value(ticket, "environment"),
            "eventId": self.value(ticket, "event_id"),
        }

    def required_setting(self, key: str, label: str) -> str:
        value = self.setting(key)
        if value in BLANK:
            raise ProviderConfigurationError(
                f"The account '{self.account.name}' has no Knight {label} (setting '{key}')."
            )
        return str(value)

    def knight_priority(self, ticket) -> Any:
        """1-4 from the ticket's override or the priority map; Knight judges anything else."""
        override = (ticket.extra or {}).get("ticket_priority")
        value = override if override not in BLANK else self.remote_priority_for(ticket.priority)
        # 2026-11: admins edit the priority map as JSON and may write "2"; Knight wants a number.
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        return value
