"""ChatOps Knight emulator (docs/providers.md §1, seed 000): a LoopBack 4 server.

Strict like the real one as far as it is known: JSON bodies only; every ticket call signed
with an HS256 JWT over the source token, whose claims must match the headers and the body;
AJV-style validation errors (422 with `details`); error bodies in LoopBack's shape.

Inferred (no source states it, 2026-11):
- initiateTicket with a ticketId Knight already has creates nothing and answers success
  again: the caller chooses the id, so that is what makes a resend safe.
- The JWT `timestamp` must carry a UTC offset and lie within 5 minutes of now.
- Models are strict (unknown body properties refused), strings must not be empty, and
  `accountCodeLocators` needs at least one locator.
- Locators naming no account Knight knows are refused with HTTP 200
  `{"success": false, "errorMessage": [...]}`.
- updateTicket of an unknown ticketId answers 404.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import jwt

from providers.knight import SANDBOX_ACCOUNT_CODE, SANDBOX_SOURCE_ID, STATUSES
from providers.sandbox.http import Emulator, Reply, SandboxRequest

CLOCK_SKEW = timedelta(minutes=5)
IMPACTS = ("High", "Medium", "Low")
LOCATOR_KEYS = ("SearchKey", "SearchValue")
COMMON_FIELDS = {
    "accountCodeLocators": "locators",
    "environment": "text",
    "eventId": "text",
    "ticketId": "text",
    "ticketDesc": "text",
    "ticketPriority": "priority",
    "ticketImpact": "impact",
    "ticketType": "text",
    "ticketAssignmentGroups": "texts",
}
INITIATE_SCHEMA = {
    "required": ("accountCodeLocators", "environment", "eventId", "ticketDesc", "ticketPriority", "ticketId"),
    "fields": {
        **COMMON_FIELDS,
        "callbackAddress": "url",
        "additionalProperties": "object",
        "channelCreateRequest": "object",
    },
}
UPDATE_SCHEMA = {
    "required": ("accountCodeLocators", "environment", "eventId", "status", "ticketId"),
    "fields": {
        **COMMON_FIELDS,
        "status": "status",
        "channelId": "text",
        "resolveTime": "text",
        "resolver": "text",
        "statusDescription": "text",
        "isFetchDetailsRequired": "bool",
        "sourceIdentificationCode": "text",
        "ticketDetail": "object",
    },
}


def loopback_error(status: int, name: str, message: str, **extra: Any) -> Reply:
    return Reply.json({"error": {"statusCode": status, "name": name, "message": message, **extra}}, status)


def unauthorized(message: str) -> Reply:
    return loopback_error(401, "UnauthorizedError", message)


def detail(path: str, code: str, message: str, **info: Any) -> dict:
    return {"path": path, "code": code, "message": message, "info": info}


def check_value(kind: str, path: str, value: Any) -> list[dict]:
    """AJV-style details for one property (paths like "/ticketPriority")."""
    if kind in ("text", "url"):
        if not isinstance(value, str):
            return [detail(path, "type", "must be string", type="string")]
        if not value.strip():
            return [detail(path, "minLength", "must NOT have fewer than 1 characters", limit=1)]
        if kind == "url" and not (urlsplit(value).scheme in ("http", "https") and urlsplit(value).netloc):
            return [detail(path, "format", 'must match format "uri"', format="uri")]
        return []
    if kind == "priority":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return [detail(path, "type", "must be number", type="number")]
        if value < 1:
            return [detail(path, "minimum", "must be >= 1", comparison=">=", limit=1)]
        if value > 4:
            return [detail(path, "maximum", "must be <= 4", comparison="<=", limit=4)]
        return []
    if kind in ("impact", "status"):
        allowed = list(IMPACTS if kind == "impact" else STATUSES)
        if value not in allowed:
            return [detail(path, "enum", "must be equal to one of the allowed values", allowedValues=allowed)]
        return []
    if kind == "texts":
        if not isinstance(value, list):
            return [detail(path, "type", "must be array", type="array")]
        return [d for n, v in enumerate(value) for d in check_value("text", f"{path}/{n}", v)]
    if kind == "object":
        return [] if isinstance(value, dict) else [detail(path, "type", "must be object", type="object")]
    if kind == "bool":
        return [] if isinstance(value, bool) else [detail(path, "type", "must be boolean", type="boolean")]
    # locators: a non-empty array of {"SearchKey": string, "SearchValue": string}
    if not isinstance(value, list):
        return [detail(path, "type", "must be array", type="array")]
    if not value:
        return [detail(path, "minItems", "must NOT have fewer than 1 items", limit=1)]
    details = []
    for n, item in enumerate(value):
        if not isinstance(item, dict):
            details.append(detail(f"{path}/{n}", "type", "must be object", type="object"))
            continue
        for key in LOCATOR_KEYS:
            if key not in item:
                details.append(
                    detail(
                        f"{path}/{n}", "required", f"must have required property '{key}'", missingProperty=key
                    )
                )
            else:
                details.extend(check_value("text", f"{path}/{n}/{key}", item[key]))
        for key in sorted(set(item) - set(LOCATOR_KEYS)):
            details.append(
                detail(
                    f"{path}/{n}",
                    "additionalProperties",
                    "must NOT have additional properties",
                    additionalProperty=key,
                )
            )
    return details


def validate(body: dict, schema: dict) -> list[dict]:
    details = [
        detail("", "required", f"must have required property '{name}'", missingProperty=name)
        for name in schema["required"]
        if name not in body
    ]
    for name, value in body.items():
        kind = schema["fields"].get(name)
        if kind is None:
            details.append(
                detail(
                    "", "additionalProperties", "must NOT have additional properties", additionalProperty=name
                )
            )
        else:
            details.extend(check_value(kind, f"/{name}", value))
    return details


class KnightEmulator(Emulator):
    name = "knight"
    credential_keys = ("source_token",)
    ticket_id_key = "ticketId"
    # Knight refuses a source whose account locators name no account it knows.
    refused_create = {
        "ticket": {},
        "settings": {"account_code_locators": [{"SearchKey": "accountCode", "SearchValue": "nobody"}]},
        "words": "No account matches the accountCodeLocators",
    }

    @classmethod
    def references(cls, held: dict) -> set[str]:
        return {held["ticketId"]}  # the console reference is Knight's ticket id

    @classmethod
    def stored_fields(cls, held: dict) -> dict[str, str]:
        # One text field: the title, a blank line, then the description (providers/knight.py).
        title, _, description = held["ticketDesc"].partition("\n\n")
        return {"title": title, "description": description, "status": held["status"]}

    #: The source id this Knight knows (not secret; the demo account's setting).
    source_id = SANDBOX_SOURCE_ID
    #: Accounts the locators may name ("demo1" is the seed's).
    known_locators = frozenset({("accountCode", SANDBOX_ACCOUNT_CODE), ("accountCode", "demo1")})

    def reset(self) -> None:
        self.tickets: dict[str, dict] = {}
        self.calls: list[dict] = []  # every signed call: endpoint, ticketId, X-Transaction-Id, answer

    def routes(self):
        return [
            ("GET", r"/ping", self.ping),
            ("POST", r"/api/v1/initiateTicket", self.initiate_ticket),
            ("POST", r"/api/v1/updateTicket", self.update_ticket),
        ]

    def snapshot(self) -> dict:
        return {"tickets": copy.deepcopy(list(self.tickets.values())), "calls": copy.deepcopy(self.calls)}

    # --- endpoints -----------------------------------------------------------------------
    def ping(self, request: SandboxRequest) -> Reply:
        headers = {k: v for k, v in request.headers.items() if "token" not in k and "authorization" not in k}
        return Reply.json(
            {
                "greeting": "Hello from LoopBack",
                "date": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "url": "/ping",
                "headers": headers,
            }
        )

    def initiate_ticket(self, request: SandboxRequest) -> Reply:
        return self.handle(request, "initiateTicket", INITIATE_SCHEMA, self.initiate)

    def update_ticket(self, request: SandboxRequest) -> Reply:
        return self.handle(request, "updateTicket", UPDATE_SCHEMA, self.update)

    def handle(self, request: SandboxRequest, endpoint: str, schema: dict, apply) -> Reply:
        body, reply = self.read_body(request)
        if reply is None:
            reply = self.authenticate(request, body)
        if reply is None:
            details = validate(body, schema)
            if details:
                reply = loopback_error(
                    422,
                    "UnprocessableEntityError",
                    "The request body is invalid. See error object `details` property for more info.",
                    code="VALIDATION_FAILED",
                    details=details,
                )
        if reply is None:
            reply = self.unknown_account(body) or apply(body, request.header("x-transaction-id"))
        self.calls.append(
            {
                "endpoint": endpoint,
                "ticketId": body.get("ticketId") if isinstance(body, dict) else None,
                "transactionId": request.header("x-transaction-id"),
                "applicationName": request.header("x-application-name"),
                "status": reply.status,
            }
        )
        return reply

    def initiate(self, body: dict, transaction_id: str) -> Reply:
        existing = self.tickets.get(body["ticketId"])
        if existing is not None:
            existing["initiate_calls"] += 1  # a resend: nothing new is created
            return Reply.json({"success": True, "errorMessage": []})
        now = datetime.now(UTC).isoformat()
        self.tickets[body["ticketId"]] = {
            **body,
            "ticketType": body.get("ticketType", "Incident"),
            "status": "NEW",
            "createdAt": now,
            "initiate_calls": 1,
            "history": [{"status": "NEW", "transactionId": transaction_id, "at": now}],
        }
        return Reply.json({"success": True, "errorMessage": []})

    def update(self, body: dict, transaction_id: str) -> Reply:
        ticket = self.tickets.get(body["ticketId"])
        if ticket is None:
            return loopback_error(404, "NotFoundError", f'Ticket "{body["ticketId"]}" not found.')
        ticket.update({k: v for k, v in body.items() if k != "ticketId"})
        ticket["history"].append(
            {"status": body["status"], "transactionId": transaction_id, "at": datetime.now(UTC).isoformat()}
        )
        return Reply.json(True)

    # --- checks --------------------------------------------------------------------------
    def read_body(self, request: SandboxRequest) -> tuple[Any, Reply | None]:
        if request.content_type != "application/json":
            return {}, loopback_error(
                415,
                "UnsupportedMediaTypeError",
                f"Content-type {request.content_type or '(none)'} does not match [application/json].",
            )
        try:
            body = json.loads(request.body or b"")
        except ValueError as exc:
            return {}, loopback_error(
                400, "BadRequestError", f"Invalid JSON: {exc}", code="INVALID_REQUEST_BODY"
            )
        if not isinstance(body, dict):
            return {}, loopback_error(
                422,
                "UnprocessableEntityError",
                "The request body is invalid.",
                code="VALIDATION_FAILED",
                details=[detail("", "type", "must be object", type="object")],
            )
        return body, None

    def authenticate(self, request: SandboxRequest, body: dict) -> Reply | None:
        source_id = request.header("x-chatops-source-id")
        token = request.header("x-chatops-source-api-token")
        if not source_id or not token:
            return unauthorized("Missing X-Chatops-Source-Id or X-Chatops-Source-Api-Token header.")
        if source_id != self.source_id:
            return unauthorized("Unknown source id.")
        try:
            claims = jwt.decode(token, self.credentials.get("source_token", ""), algorithms=["HS256"])
        except jwt.InvalidSignatureError:
            return unauthorized("Invalid source API token: signature verification failed.")
        except jwt.PyJWTError:
            return unauthorized("Invalid source API token: not a valid HS256 JWT.")
        if claims.get("X-Chatops-Source-Id") != source_id:
            return unauthorized("The API token was signed for another source id.")
        if not self.fresh(claims.get("timestamp")):
            return unauthorized(
                "The API token's timestamp is missing, has no UTC offset, or is more than 5 minutes off."
            )
        if claims.get("ticketId") != body.get("ticketId"):
            return unauthorized("The API token was signed for another ticketId.")
        if claims.get("callbackAddress") != body.get("callbackAddress"):
            return unauthorized("The API token was signed for another callbackAddress.")
        return None

    @staticmethod
    def fresh(timestamp: Any) -> bool:
        try:
            signed = datetime.fromisoformat(str(timestamp))
        except ValueError:
            return False
        return signed.tzinfo is not None and abs(datetime.now(UTC) - signed) <= CLOCK_SKEW

    def unknown_account(self, body: dict) -> Reply | None:
        locators = body["accountCodeLocators"]
        if any((loc["SearchKey"], loc["SearchValue"]) in self.known_locators for loc in locators):
            return None
        named = ", ".join(f"{loc['SearchKey']}={loc['SearchValue']}" for loc in locators)
        return Reply.json(
            {"success": False, "errorMessage": [f"No account matches the accountCodeLocators ({named})."]}
        )
