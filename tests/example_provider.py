"""A test-only provider, "Example Desk", and its sandbox emulator: one module, registered by one
line in console/test_settings.py (EXTRA_PROVIDERS), nothing edited anywhere else.

It proves that a provider joins the console through the registry alone: the contract suite
(tests/providers/test_contract.py), the sync tests and the fault suite run it like the five real
ones. Its API is small but honest REST:

- `POST /oauth/token` (form: grant_type=client_credentials, client_id, client_secret) answers
  `{"access_token", "token_type": "Bearer", "expires_in"}`; a bad client is a 401
  `{"error": "invalid_client", "message": ...}`.
- Every other call carries `Authorization: Bearer <token>` (else 401 `{"message": ...}`).
- `POST /api/tickets` (JSON) creates: 201 with the ticket; a refused field is a 422
  `{"message", "errors": {field: [messages]}}`.
- `PATCH /api/tickets/<id>` changes subject, body, status, priority; `GET /api/tickets/<id>`
  reads one with its replies; `POST /api/tickets/<id>/replies` adds a reply (201);
  `GET /api/me` is the cheap call that tests the connection. An unknown id is a 404.
"""

from __future__ import annotations

import itertools
import secrets
import time
from typing import Any

from django import forms

from providers.base import CREATE, FETCH, REPLY, TEST, UPDATE, RemoteRef, RemoteReply, RemoteState
from providers.errors import ProviderResponseError
from providers.http import ApiRequest, ApiResponse
from providers.sandbox.http import Emulator, Reply, SandboxRequest, bearer_token
from providers.tokens import Token, TokenAuthProvider

#: Fields whose 422 messages map onto console ticket fields.
FIELD_NAMES = {"subject": "title", "body": "description", "priority": "priority", "status": "status"}
STATUSES = ("open", "waiting", "solved", "closed")
PRIORITIES = ("low", "normal", "high", "urgent")
TOKEN_LIFETIME = 600


class ExampleProvider(TokenAuthProvider):
    kind = "example"
    label = "Example Desk"
    capabilities = frozenset({CREATE, UPDATE, FETCH, REPLY, TEST})
    credential_fields = {
        "client_id": forms.CharField(label="Client id"),
        "client_secret": forms.CharField(label="Client secret"),
    }
    default_status_map = {
        "outbound": {
            "new": "open",
            "open": "open",
            "in_progress": "open",
            "on_hold": "waiting",
            "pending": "waiting",
            "resolved": "solved",
            "closed": "closed",
            "cancelled": "closed",
        },
        "inbound": {"open": "open", "waiting": "pending", "solved": "resolved", "closed": "closed"},
    }
    default_priority_map = {"low": "low", "medium": "normal", "high": "high", "urgent": "urgent"}
    reads_conversation = True

    TOKEN_PATH = "/oauth/token"
    TICKETS_PATH = "/api/tickets"
    TICKET_PATH = "/api/tickets/{id}"
    REPLIES_PATH = "/api/tickets/{id}/replies"
    ME_PATH = "/api/me"

    # --- auth ----------------------------------------------------------------------------
    def build_token_request(self, refresh_token: str = "") -> ApiRequest:
        return ApiRequest(
            "POST",
            self.TOKEN_PATH,
            form={
                "grant_type": "client_credentials",
                "client_id": self.credential("client_id"),
                "client_secret": self.credential("client_secret"),
            },
        )

    def parse_token(self, data: Any) -> Token:
        return Token(access_token=str(data["access_token"]), expires_in=data.get("expires_in"))

    # --- tickets -------------------------------------------------------------------------
    def ticket_body(self, ticket) -> dict[str, Any]:
        return {
            "subject": ticket.title,
            "body": self.description_with_marker(ticket),
            "status": self.remote_status_for(ticket.status),
            "priority": self.remote_priority_for(ticket.priority),
        }

    def build_create(self, ticket) -> ApiRequest:
        body = {**self.ticket_body(ticket), "requester": ticket.requester_email or ""}
        return ApiRequest("POST", self.TICKETS_PATH, json=body)

    def parse_create(self, data: Any, ticket) -> RemoteRef:
        if not isinstance(data, dict) or not data.get("id"):
            raise ProviderResponseError("Example Desk answered success without a ticket id.")
        return self.ref(data)

    def build_update(self, ticket) -> ApiRequest:
        path = self.TICKET_PATH.format(id=ticket.remote_id)
        return ApiRequest("PATCH", path, json=self.ticket_body(ticket))

    def parse_update(self, data: Any, ticket) -> RemoteRef | None:
        return self.ref(data) if isinstance(data, dict) and data.get("id") else None

    def build_fetch(self, tickets) -> ApiRequest:
        return ApiRequest("GET", self.TICKET_PATH.format(id=tickets[0].remote_id))

    def parse_fetch(self, data: Any, tickets) -> list[RemoteState]:
        if not isinstance(data, dict) or not data.get("id"):
            raise ProviderResponseError("Example Desk's ticket answer has no id.")
        replies = [
            RemoteReply(
                remote_id=str(reply["id"]),
                body=str(reply.get("body") or ""),
                author=str(reply.get("author") or ""),
                by_provider_staff=bool(reply.get("staff")),
                date=str(reply.get("created_at") or ""),
            )
            for reply in data.get("replies") or []
        ]
        return [RemoteState(str(data["id"]), str(data.get("status") or ""), fields=data, replies=replies)]

    def build_reply(self, ticket, text: str) -> ApiRequest:
        return ApiRequest("POST", self.REPLIES_PATH.format(id=ticket.remote_id), json={"body": text})

    def build_test(self) -> ApiRequest:
        return ApiRequest("GET", self.ME_PATH)

    def parse_test(self, data: Any) -> str:
        return f"Connected as {data.get('name', 'an unnamed client')}."

    @staticmethod
    def ref(data: dict) -> RemoteRef:
        return RemoteRef(
            remote_id=str(data["id"]),
            remote_number=str(data.get("number") or ""),
            remote_url=str(data.get("url") or ""),
            remote_status=str(data.get("status") or ""),
        )

    # --- errors --------------------------------------------------------------------------
    def field_errors(self, data: Any, response: ApiResponse | None) -> dict[str, list[str]]:
        errors = data.get("errors") if isinstance(data, dict) else None
        if not isinstance(errors, dict):
            return {}
        return {FIELD_NAMES.get(key, "__all__"): list(value) for key, value in errors.items()}


class ExampleEmulator(Emulator):
    name = "example"
    credential_keys = ("client_id", "client_secret")
    # An empty subject is refused with these words (a 422 naming the field).
    refused_create = {"ticket": {"title": ""}, "settings": {}, "words": "The subject is required."}

    def reset(self) -> None:
        self.tickets: dict[str, dict] = {}
        self.tokens: dict[str, float] = {}  # token -> epoch expiry
        self.tokens_issued = 0
        self.ids = itertools.count(1001)

    def routes(self):
        return [
            ("POST", r"/oauth/token", self.token),
            ("GET", r"/api/me", self.me),
            ("POST", r"/api/tickets", self.create),
            ("GET", r"/api/tickets/(?P<id>\d+)", self.read),
            ("PATCH", r"/api/tickets/(?P<id>\d+)", self.update),
            ("POST", r"/api/tickets/(?P<id>\d+)/replies", self.reply),
        ]

    def snapshot(self) -> dict:
        return {
            "tickets": [dict(t, replies=list(t["replies"])) for t in self.tickets.values()],
            "tokens_issued": self.tokens_issued,
        }

    def expire_tokens(self) -> None:
        self.tokens = dict.fromkeys(self.tokens, 0.0)

    @classmethod
    def stored_fields(cls, held: dict) -> dict[str, str]:
        return {"title": held["subject"], "description": held["body"], "status": held["status"]}

    # --- auth ----------------------------------------------------------------------------
    def token(self, request: SandboxRequest) -> Reply:
        fields, _ = request.form()
        if fields.get("grant_type") != "client_credentials":
            return Reply.json({"error": "unsupported_grant_type", "message": "Use client_credentials."}, 400)
        wanted = (self.credentials.get("client_id"), self.credentials.get("client_secret"))
        if (fields.get("client_id"), fields.get("client_secret")) != wanted:
            return Reply.json({"error": "invalid_client", "message": "Unknown client or wrong secret."}, 401)
        access = secrets.token_urlsafe(24)
        self.tokens[access] = time.time() + TOKEN_LIFETIME
        self.tokens_issued += 1
        return Reply.json({"access_token": access, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME})

    def refused(self, request: SandboxRequest) -> Reply | None:
        if self.tokens.get(bearer_token(request), 0.0) <= time.time():
            return Reply.json({"message": "Unauthenticated: the token is missing, unknown or expired."}, 401)
        return None

    # --- tickets -------------------------------------------------------------------------
    def me(self, request: SandboxRequest) -> Reply:
        return self.refused(request) or Reply.json({"name": "Example sandbox client"})

    def create(self, request: SandboxRequest) -> Reply:
        refused = self.refused(request)
        if refused:
            return refused
        body = request.json()
        errors = self.invalid(body, creating=True)
        if errors:
            return self.unprocessable(errors)
        number = next(self.ids)
        ticket = {
            "id": number,
            "number": f"EX-{number}",
            "url": f"https://example.invalid/t/{number}",
            "subject": body["subject"],
            "body": body.get("body", ""),
            "status": body.get("status") or "open",
            "priority": body.get("priority") or "normal",
            "requester": body.get("requester", ""),
            "replies": [],
        }
        self.tickets[str(number)] = ticket
        return Reply.json(ticket, 201)

    def read(self, request: SandboxRequest) -> Reply:
        ticket, refused = self.found(request)
        return refused or Reply.json(ticket)

    def update(self, request: SandboxRequest) -> Reply:
        ticket, refused = self.found(request)
        if refused:
            return refused
        body = request.json()
        errors = self.invalid(body, creating=False)
        if errors:
            return self.unprocessable(errors)
        ticket.update({k: body[k] for k in ("subject", "body", "status", "priority") if k in body})
        return Reply.json(ticket)

    def reply(self, request: SandboxRequest) -> Reply:
        ticket, refused = self.found(request)
        if refused:
            return refused
        text = str((request.json() or {}).get("body") or "").strip()
        if not text:
            return self.unprocessable({"body": ["The body is required."]})
        reply = {"id": len(ticket["replies"]) + 1, "body": text, "author": "API client", "staff": False}
        ticket["replies"].append(reply)
        return Reply.json(reply, 201)

    # --- checks --------------------------------------------------------------------------
    def found(self, request: SandboxRequest) -> tuple[dict, Reply | None]:
        refused = self.refused(request)
        if refused:
            return {}, refused
        ticket = self.tickets.get(request.match["id"])
        if ticket is None:
            return {}, Reply.json({"message": f"No ticket {request.match['id']}."}, 404)
        return ticket, None

    @staticmethod
    def invalid(body: Any, *, creating: bool) -> dict[str, list[str]]:
        if not isinstance(body, dict):
            return {"body": ["Send a JSON object."]}
        errors: dict[str, list[str]] = {}
        if (creating or "subject" in body) and not str(body.get("subject") or "").strip():
            errors["subject"] = ["The subject is required."]
        if "status" in body and body["status"] not in STATUSES:
            errors["status"] = [f"The status must be one of {', '.join(STATUSES)}."]
        if "priority" in body and body["priority"] not in PRIORITIES:
            errors["priority"] = [f"The priority must be one of {', '.join(PRIORITIES)}."]
        return errors

    @staticmethod
    def unprocessable(errors: dict[str, list[str]]) -> Reply:
        return Reply.json({"message": next(iter(errors.values()))[0], "errors": errors}, 422)
