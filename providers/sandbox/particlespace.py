"""Particle Space emulator (docs/providers.md §5, seed 004).

Strict like the real API as documented: a key exchange at `/api/v1/authenticate` issuing
short-lived Bearer tokens, form-urlencoded bodies only, Laravel-style 422 answers naming
each missing field, and `PUT /api/v1/ticket/{id}` as a full replacement (a PUT missing a
required field is refused, never merged). Answer bodies beyond the token's are inferred.
"""

from __future__ import annotations

import re
import secrets
import time
from datetime import UTC, datetime

from providers.sandbox.http import Emulator, Reply, SandboxRequest, bearer_token

TOKEN_LIFETIME = 900
COLUMNS = ("NEW", "OPEN", "IN_PROGRESS", "ON_HOLD", "PENDING", "DONE", "CANCELLED")
BOOLEANS = {"1": True, "true": True, "0": False, "false": False}
EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+\.[^@\s,]+$")
PHONE = re.compile(r"^\+?\d{7,15}$")


def error(message: str, status: int, **extra) -> Reply:
    return Reply.json({"status": "error", "message": message, **extra}, status)


def invalid(errors: dict[str, list[str]]) -> Reply:
    """Laravel's 422: the first message, '(and N more errors)', and every field's messages."""
    first = next(iter(errors.values()))[0]
    more = len(errors) - 1
    if more:
        first += f" (and {more} more error{'s' if more > 1 else ''})"
    return error(first, 422, errors=errors)


class ParticleSpaceEmulator(Emulator):
    name = "particlespace"
    credential_keys = ("secret_key", "publish_key")
    refused_create = {"ticket": {"title": ""}, "settings": {}, "words": "The title field is required."}

    @classmethod
    def stored_fields(cls, held: dict) -> dict[str, str]:
        return {"title": held["title"], "description": held["description"], "status": held["status"]}

    @classmethod
    def generate_credentials(cls) -> dict[str, str]:
        return {
            "secret_key": "sk_test_" + secrets.token_hex(20),
            "publish_key": "pk_test_" + secrets.token_hex(20),
        }

    def reset(self) -> None:
        self.tickets: dict[str, dict] = {}
        self.updates: list[dict] = []
        self.tokens: dict[str, float] = {}  # token -> monotonic expiry
        self.tokens_issued = 0

    def routes(self):
        return [
            ("POST", r"/api/v1/authenticate", self.authenticate),
            ("POST", r"/api/v1/ticket/new", self.create),
            ("PUT", r"/api/v1/ticket/(?P<id>[^/]+)", self.update),
        ]

    def snapshot(self) -> dict:
        return {
            "tickets": list(self.tickets.values()),
            "updates": list(self.updates),
            "tokens_issued": self.tokens_issued,
            "columns": list(COLUMNS),
        }

    def expire_tokens(self) -> None:
        self.tokens = dict.fromkeys(self.tokens, 0.0)

    # --- auth ----------------------------------------------------------------------------
    def authenticate(self, request: SandboxRequest) -> Reply:
        if request.content_type != "application/x-www-form-urlencoded":
            return error("Body must be form-urlencoded", 400)
        fields, _ = request.form()
        missing = {
            key: [f"The {key.replace('_', ' ')} field is required."]
            for key in ("secret_key", "publish_key")
            if not fields.get(key)
        }
        if missing:
            return invalid(missing)
        if not (
            secrets.compare_digest(fields["secret_key"], self.credentials.get("secret_key", ""))
            and secrets.compare_digest(fields["publish_key"], self.credentials.get("publish_key", ""))
        ):
            return error("Invalid API keys", 401)
        token = secrets.token_urlsafe(32)
        self.tokens[token] = time.monotonic() + TOKEN_LIFETIME
        self.tokens_issued += 1
        return Reply.json({"status": "success", "data": {"token": token, "expires_in": TOKEN_LIFETIME}})

    def unauthorized(self, request: SandboxRequest) -> Reply | None:
        token = bearer_token(request)
        if token not in self.tokens:
            return error("Unauthenticated.", 401)
        if self.tokens[token] <= time.monotonic():
            return error("Token expired", 401)
        return None

    # --- tickets -------------------------------------------------------------------------
    def create(self, request: SandboxRequest) -> Reply:
        refused = self.unauthorized(request) or self.not_form(request)
        if refused:
            return refused
        fields, _ = request.form()
        errors = self.validate(fields, description_required=False)
        if errors:
            return invalid(errors)
        ticket_id = "tic_" + secrets.token_hex(12)
        now = self.now()
        ticket = {"id": ticket_id, **self.record(fields), "created_at": now, "updated_at": now}
        self.tickets[ticket_id] = ticket
        return Reply.json({"status": "success", "message": "Ticket created.", "data": ticket})

    def update(self, request: SandboxRequest) -> Reply:
        refused = self.unauthorized(request)
        if refused:
            return refused
        ticket_id = request.match["id"]
        if ticket_id not in self.tickets:
            return error("Ticket not found", 404)
        refused = self.not_form(request)
        if refused:
            return refused
        fields, _ = request.form()
        errors = self.validate(fields, description_required=True)
        if errors:
            return invalid(errors)
        old = self.tickets[ticket_id]
        # A full replacement: nothing of the old ticket survives but its id and creation time.
        ticket = {
            "id": ticket_id,
            **self.record(fields),
            "created_at": old["created_at"],
            "updated_at": self.now(),
        }
        self.tickets[ticket_id] = ticket
        self.updates.append({"id": ticket_id, "fields": dict(fields), "at": ticket["updated_at"]})
        return Reply.json({"status": "success", "message": "Ticket updated.", "data": ticket})

    # --- the rules -----------------------------------------------------------------------
    @staticmethod
    def not_form(request: SandboxRequest) -> Reply | None:
        if request.content_type != "application/x-www-form-urlencoded":
            return error("Body must be form-urlencoded", 400)
        return None

    @staticmethod
    def validate(fields: dict[str, str], *, description_required: bool) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}

        def refuse(field: str, message: str) -> None:
            errors.setdefault(field, []).append(message)

        required = ["title", "description", "status", "notify", "automated"]
        if not description_required:
            required.remove("description")
        for key in required:
            if not fields.get(key, "").strip():
                refuse(key, f"The {key} field is required.")
        if fields.get("status") and fields["status"] not in COLUMNS:
            column = fields["status"]
            refuse("status", f"The selected status is invalid: {column} is not a column of this board.")
        for key in ("notify", "automated"):
            if fields.get(key) and fields[key].lower() not in BOOLEANS:
                refuse(key, f"The {key} field must be true or false.")
        if BOOLEANS.get(fields.get("notify", "").lower()):
            kind = fields.get("type", "")
            contacts = [c.strip() for c in fields.get("contacts", "").split(",") if c.strip()]
            if not kind:
                refuse("type", "The type field is required when notify is 1.")
            elif kind not in ("email", "sms"):
                refuse("type", "The selected type is invalid.")
            if not contacts:
                refuse("contacts", "The contacts field is required when notify is 1.")
            elif kind in ("email", "sms"):
                pattern = EMAIL if kind == "email" else PHONE
                bad = [c for c in contacts if not pattern.match(c)]
                if bad:
                    refuse("contacts", f"The contacts field has an invalid {kind} contact: {bad[0]}.")
        return errors

    @staticmethod
    def record(fields: dict[str, str]) -> dict:
        notify = BOOLEANS[fields["notify"].lower()]
        ticket = {
            "title": fields["title"],
            "description": fields.get("description", ""),
            "status": fields["status"],
            "notify": notify,
            "automated": BOOLEANS[fields["automated"].lower()],
        }
        if notify:
            ticket.update(
                {
                    "type": fields["type"],
                    "contacts": [c.strip() for c in fields["contacts"].split(",") if c.strip()],
                    "time": fields.get("time", ""),
                    "notifySubject": fields.get("notifySubject", ""),
                    "notifyMessage": fields.get("notifyMessage", ""),
                }
            )
        return ticket

    @staticmethod
    def now() -> str:
        return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
