"""Keliweb emulator (docs/providers.md §3, seed 002): Laravel Passport in front of WHMCS.

Strict like the real API:
- `POST /oauth/token` takes form fields (urlencoded or multipart) and answers like
  league/oauth2-server: 401 `invalid_client`, 400 `invalid_grant` / `invalid_request` /
  `unsupported_grant_type`. Access tokens live 3600 s, refresh tokens 10 days; a refresh
  revokes the old pair.
- The API wants `X-Requested-With: XMLHttpRequest` (without it Laravel answers a browser:
  a redirect to its login page) and a live Bearer token (else 401 `{"message":
  "Unauthenticated."}`). Bodies are multipart or urlencoded form fields; anything else reads
  as no fields at all.
- WHMCS checks in WHMCS order, each failure answered HTTP 200 `{"result": "error",
  "message": ...}` with the documented messages. Known departments: 1 Support, 2 Billing;
  client 1 with contact 5, service 10 and domain 20.

Inferred (no source states it, 2026-11): the wording for both service and domain, for an
invalid priority (WHMCS UpdateTicket's), and for unreadable customfields/attachments; new
tickets default to priority Medium.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import re
import secrets
import string
import time
from datetime import datetime
from typing import Any

from providers.sandbox.http import Emulator, Reply, SandboxRequest, bearer_token

ACCESS_TOKEN_SECONDS = 3600
REFRESH_TOKEN_SECONDS = 10 * 24 * 3600
DEPARTMENTS = {1: "Support", 2: "Billing"}
CLIENTS = {1: {"name": "Mario Rossi", "email": "mario.rossi@example.it", "contacts": {5}}}
SERVICES = {10: 1}  # service id -> owning client id
DOMAINS = {20: 1}  # domain id -> owning client id
PRIORITIES = ("Low", "Medium", "High")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
UNAUTHENTICATED = {"message": "Unauthenticated."}
MALFORMED = (
    "The request is missing a required parameter, includes an invalid parameter value, "
    "includes a parameter more than once, or is otherwise malformed."
)


def oauth_error(status: int, error: str, description: str, hint: str = "") -> Reply:
    body = {"error": error, "error_description": description, "message": description}
    if hint:
        body["hint"] = hint
    return Reply.json(body, status)


def whmcs_error(message: str) -> Reply:
    return Reply.json({"result": "error", "message": message})


def now_text() -> str:
    return datetime.now().strftime("%Y-%m-%d %H:%M:%S")


def as_int(value: str | None) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def truthy(value: str | None) -> bool:
    return str(value or "").strip().lower() in ("1", "true", "on", "yes")


def php_unserialize_flat(text: bytes) -> dict[Any, Any]:
    """PHP `unserialize()` of a flat array of strings, ints and bools (all customfields are)."""
    pos = 0

    def expect(token: bytes) -> None:
        nonlocal pos
        if text[pos : pos + len(token)] != token:
            raise ValueError(f"expected {token!r} at {pos}")
        pos += len(token)

    def until(stop: bytes) -> bytes:
        nonlocal pos
        end = text.index(stop, pos)
        value, pos = text[pos:end], end + len(stop)
        return value

    def scalar() -> Any:
        nonlocal pos
        kind = text[pos : pos + 2]
        pos += 2
        if kind == b"i:":
            return int(until(b";"))
        if kind == b"b:":
            return until(b";") == b"1"
        if kind == b"s:":
            length = int(until(b":"))
            expect(b'"')
            value = text[pos : pos + length].decode()
            pos += length
            expect(b'";')
            return value
        raise ValueError(f"unsupported type {kind!r}")

    expect(b"a:")
    count = int(until(b":"))
    expect(b"{")
    values = {}
    for _ in range(count):
        key = scalar()
        values[key] = scalar()
    expect(b"}")
    if pos != len(text):
        raise ValueError("trailing data")
    return values


class KeliwebEmulator(Emulator):
    name = "keliweb"
    credential_keys = ("client_id", "client_secret", "username", "password")
    ticket_id_key = "ticketid"
    refused_create = {"ticket": {"title": ""}, "settings": {}, "words": "Subject is required"}

    @classmethod
    def stored_fields(cls, held: dict) -> dict[str, str]:
        # A WHMCS ticket's text is its first message.
        first = held["replies"][0]["message"]
        return {"title": held["subject"], "description": first, "status": held["status"]}

    def reset(self) -> None:
        self.tickets: dict[int, dict] = {}
        self.ids = itertools.count(1)
        self.access_tokens: dict[str, float] = {}  # token -> expiry (epoch seconds)
        self.refresh_tokens: dict[str, tuple[float, str]] = {}  # token -> (expiry, access token)
        self.tokens_issued = 0
        self.password_grants = 0
        self.refresh_grants = 0

    def routes(self):
        return [
            ("POST", r"/oauth/token", self.token),
            ("POST", r"/api/v2/keliweb/open-ticket", self.open_ticket),
            ("POST", r"/api/v2/keliweb/get-ticket", self.get_ticket),
            ("POST", r"/api/v2/keliweb/add-ticket-reply", self.add_ticket_reply),
            ("GET", r"/login", self.login_page),
        ]

    def snapshot(self) -> dict:
        return {
            "tickets": list(self.tickets.values()),
            "tokens_issued": self.tokens_issued,
            "password_grants": self.password_grants,
            "refresh_grants": self.refresh_grants,
        }

    def expire_tokens(self) -> None:
        self.access_tokens = dict.fromkeys(self.access_tokens, 0.0)

    # --- OAuth (Passport) ---------------------------------------------------------------------
    @staticmethod
    def fields(request: SandboxRequest) -> dict[str, str]:
        return request.form()[0] if request.content_type in FORM_TYPES else {}

    def token(self, request: SandboxRequest) -> Reply:
        fields = self.fields(request)
        grant = fields.get("grant_type", "")
        if grant not in ("password", "refresh_token"):
            return oauth_error(
                400,
                "unsupported_grant_type",
                "The authorization grant type is not supported by the authorization server.",
                "Check that all required parameters have been provided",
            )
        if not fields.get("client_id"):
            return oauth_error(400, "invalid_request", MALFORMED, "Check the `client_id` parameter")
        if (fields.get("client_id"), fields.get("client_secret")) != (
            self.credentials.get("client_id"),
            self.credentials.get("client_secret"),
        ):
            return oauth_error(401, "invalid_client", "Client authentication failed")
        if grant == "password":
            for key in ("username", "password"):
                if not fields.get(key):
                    return oauth_error(400, "invalid_request", MALFORMED, f"Check the `{key}` parameter")
            if (fields["username"], fields["password"]) != (
                self.credentials.get("username"),
                self.credentials.get("password"),
            ):
                return oauth_error(400, "invalid_grant", "The user credentials were incorrect.")
            self.password_grants += 1
        else:
            old = fields.get("refresh_token", "")
            if not old:
                return oauth_error(400, "invalid_request", MALFORMED, "Check the `refresh_token` parameter")
            expires_at, old_access = self.refresh_tokens.pop(old, (0.0, ""))
            if expires_at < time.time():
                return oauth_error(
                    401, "invalid_grant", "The refresh token is invalid.", "Token has been revoked"
                )
            self.access_tokens.pop(old_access, None)  # Passport revokes the pair it replaces
            self.refresh_grants += 1
        return Reply.json(self.issue())

    def issue(self) -> dict:
        access, refresh = secrets.token_urlsafe(40), "def50200" + secrets.token_hex(48)
        self.access_tokens[access] = time.time() + ACCESS_TOKEN_SECONDS
        self.refresh_tokens[refresh] = (time.time() + REFRESH_TOKEN_SECONDS, access)
        self.tokens_issued += 1
        return {
            "token_type": "Bearer",
            "expires_in": ACCESS_TOKEN_SECONDS,
            "access_token": access,
            "refresh_token": refresh,
        }

    def refused(self, request: SandboxRequest) -> Reply | None:
        """Laravel's answer to a call it will not serve, or None."""
        if request.header("x-requested-with").lower() != "xmlhttprequest":
            # Not an AJAX call: Laravel answers as to a browser, with its login page.
            return Reply(302, b"", {"Location": f"/{self.name}/login", "Content-Type": "text/html"})
        expires_at = self.access_tokens.get(bearer_token(request))
        if expires_at is None or expires_at < time.time():
            return Reply.json(UNAUTHENTICATED, 401)
        return None

    def login_page(self, request: SandboxRequest) -> Reply:
        return Reply(
            200,
            b"<!DOCTYPE html><html><body><form>Login</form></body></html>",
            {"Content-Type": "text/html; charset=UTF-8"},
        )

    # --- WHMCS: OpenTicket --------------------------------------------------------------------------
    def open_ticket(self, request: SandboxRequest) -> Reply:
        if refusal := self.refused(request):
            return refusal
        fields = {k: v.strip() for k, v in self.fields(request).items()}
        client_id = as_int(fields.get("clientid")) if fields.get("clientid") else None
        if fields.get("clientid") and client_id not in CLIENTS:
            return whmcs_error("Client ID Not Found")
        contact_id = as_int(fields.get("contactid")) or 0
        contacts = CLIENTS[client_id]["contacts"] if client_id is not None else set()
        if fields.get("contactid") and contact_id not in contacts:
            return whmcs_error("Contact ID Not Found")
        name, email = fields.get("name", ""), fields.get("email", "")
        if client_id is None:
            if not name or not email:
                return whmcs_error("Name and email address are required if not a client")
            if not EMAIL.match(email):
                return whmcs_error("Email Address Invalid")
        else:
            name, email = CLIENTS[client_id]["name"], CLIENTS[client_id]["email"]
        dept_id = as_int(fields.get("deptid"))
        if dept_id not in DEPARTMENTS:
            return whmcs_error("Department ID not found")
        if not fields.get("subject"):
            return whmcs_error("Subject is required")
        if not fields.get("message"):
            return whmcs_error("Message is required")
        service = ""
        if fields.get("serviceid") and fields.get("domainid"):
            return whmcs_error("Service ID and Domain ID cannot both be supplied")
        for key, known, label in (("serviceid", SERVICES, "Service"), ("domainid", DOMAINS, "Domain")):
            if fields.get(key):
                owner = known.get(as_int(fields[key]))
                if owner is None or (client_id is not None and owner != client_id):
                    return whmcs_error(f"{label} ID Not Found")
                service = f"{label[0]}{as_int(fields[key])}"  # WHMCS: S<id> or D<id>
        priority = fields.get("priority") or "Medium"
        if priority not in PRIORITIES:
            return whmcs_error("Invalid Ticket Priority. Valid priorities are: Low,Medium,High")
        try:
            customfields = self.customfields(fields.get("customfields", ""))
            attachments = self.attachments(fields.get("attachments", ""))
        except ValueError as exc:
            return whmcs_error(str(exc))
        number = next(self.ids)
        date = now_text()
        ticket = {
            "ticketid": number,
            "tid": self.new_tid(),
            "c": self.new_access_key(),
            "deptid": dept_id,
            "deptname": DEPARTMENTS[dept_id],
            "userid": client_id or 0,
            "contactid": contact_id,
            "name": name,
            "email": email,
            "cc": "",
            "date": date,
            "subject": fields["subject"],
            "status": "Open",
            "priority": priority,
            "admin": "",
            "lastreply": date,
            "flag": 0,
            "service": service,
            "markdown": truthy(fields.get("markdown")),
            "customfields": customfields,
            "attachments": attachments,
            "notes": [],
            "replies": [
                self.reply_entry(
                    0, client_id or 0, contact_id, name, email, fields["message"], attachments, date=date
                )
            ],
        }
        self.tickets[number] = ticket
        return Reply.json({"result": "success", "id": str(number), "tid": ticket["tid"], "c": ticket["c"]})

    def new_tid(self) -> str:
        taken = {t["tid"] for t in self.tickets.values()}
        while (tid := f"{secrets.randbelow(900000) + 100000}") in taken:
            pass
        return tid

    @staticmethod
    def new_access_key() -> str:
        return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(8))

    @staticmethod
    def customfields(value: str) -> dict[str, Any]:
        if not value:
            return {}
        try:
            decoded = php_unserialize_flat(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError, IndexError, UnicodeDecodeError) as exc:
            raise ValueError("Invalid customfields: expected a base64 encoded serialized array") from exc
        return {str(k): v for k, v in decoded.items()}

    @staticmethod
    def attachments(value: str) -> list[dict[str, Any]]:
        if value in ("", "[]"):  # the seed's own jQuery example sends a literal "[]"
            return []
        try:
            items = json.loads(base64.b64decode(value, validate=True))
            if not isinstance(items, list):
                raise ValueError
            files = []
            for item in items:
                name = str(item["name"]).strip()
                data = base64.b64decode(item["data"], validate=True)
                if not name:
                    raise ValueError
                encoded = base64.b64encode(data).decode()
                files.append({"name": name, "size": len(data), "data_base64": encoded})
        except (binascii.Error, ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                "Invalid attachments: expected a base64 encoded JSON array of name and data"
            ) from exc
        return files

    @staticmethod
    def reply_entry(
        replyid: int,
        userid: int,
        contactid: int,
        name: str,
        email: str,
        message: str,
        attachments: list[dict],
        *,
        admin: str = "",
        date: str = "",
    ) -> dict:
        return {
            "replyid": replyid,
            "userid": userid,
            "contactid": contactid,
            "name": name,
            "email": email,
            "date": date or now_text(),
            "message": message,
            "attachment": "|".join(a["name"] for a in attachments),
            "admin": admin,
            "rating": 0,
        }

    # --- WHMCS: GetTicket ---------------------------------------------------------------------------
    def find(self, fields: dict[str, str]) -> dict | None:
        if fields.get("ticketnum"):
            return next((t for t in self.tickets.values() if t["tid"] == fields["ticketnum"].strip()), None)
        return self.tickets.get(as_int(fields.get("ticketid")) or 0)

    def get_ticket(self, request: SandboxRequest) -> Reply:
        if refusal := self.refused(request):
            return refusal
        fields = self.fields(request)
        ticket = self.find(fields)
        if ticket is None:
            return whmcs_error("Ticket ID Not Found")
        replies = [self.as_whmcs(r) for r in ticket["replies"]]
        if fields.get("repliessort", "").upper() == "DESC":
            replies.reverse()
        keys = (
            "tid",
            "c",
            "deptid",
            "deptname",
            "userid",
            "contactid",
            "name",
            "email",
            "cc",
            "date",
            "subject",
            "status",
            "priority",
            "admin",
            "lastreply",
            "flag",
            "service",
        )
        return Reply.json(
            {
                "result": "success",
                "ticketid": str(ticket["ticketid"]),
                **self.as_whmcs({k: ticket[k] for k in keys}),
                "replies": {"reply": replies},
                "notes": {"note": [self.as_whmcs(n) for n in ticket["notes"]]},
            }
        )

    @staticmethod
    def as_whmcs(row: dict) -> dict:
        """WHMCS answers every number as a string."""
        return {k: str(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in row.items()}

    # --- WHMCS: AddTicketReply ----------------------------------------------------------------------
    def add_ticket_reply(self, request: SandboxRequest) -> Reply:
        if refusal := self.refused(request):
            return refusal
        fields = {k: v.strip() for k, v in self.fields(request).items()}
        ticket = self.tickets.get(as_int(fields.get("ticketid")) or 0)
        if ticket is None:
            return whmcs_error("Ticket ID not found")
        client_id = as_int(fields.get("clientid")) if fields.get("clientid") else None
        if fields.get("clientid") and client_id not in CLIENTS:
            return whmcs_error("Client ID Not Found")
        name, email = fields.get("name", ""), fields.get("email", "")
        if client_id is None and not ticket["userid"] and (not name or not email):
            return whmcs_error("Name and email address are required if not a client")
        if email and not EMAIL.match(email):
            return whmcs_error("Email Address Invalid")
        if not fields.get("message"):
            return whmcs_error("Message is required")
        try:
            attachments = self.attachments(fields.get("attachments", ""))
        except ValueError as exc:
            return whmcs_error(str(exc))
        userid = client_id or ticket["userid"]
        ticket["replies"].append(
            self.reply_entry(
                self.next_reply_id(ticket),
                userid,
                0,
                name,
                email,
                fields["message"],
                attachments,
            )
        )
        ticket["status"], ticket["lastreply"] = "Customer-Reply", ticket["replies"][-1]["date"]
        return Reply.json({"result": "success"})

    # --- for tests and demos: what people do in Keliweb's own UI ----------------------------------------
    def controls(self):
        return {
            "staff-reply": lambda data: self.staff_reply(
                int(data["ticketid"]),
                str(data["message"]),
                status=str(data.get("status") or "Answered"),
                admin=str(data.get("admin") or "Keliweb Support"),
            ),
            "customer-reply": lambda data: self.customer_reply(int(data["ticketid"]), str(data["message"])),
        }

    def staff_reply(
        self, ticketid: int, message: str, *, status: str = "Answered", admin: str = "Keliweb Support"
    ) -> dict:
        """A Keliweb support agent answers in WHMCS's admin area."""
        with self.lock:
            ticket = self.tickets[int(ticketid)]
            ticket["replies"].append(
                self.reply_entry(self.next_reply_id(ticket), 0, 0, "", "", message, [], admin=admin)
            )
            ticket["status"], ticket["lastreply"] = status, ticket["replies"][-1]["date"]
            return {"replyid": ticket["replies"][-1]["replyid"]}

    def customer_reply(self, ticketid: int, message: str) -> dict:
        """The requester answers in WHMCS's client area (not through the console)."""
        with self.lock:
            ticket = self.tickets[int(ticketid)]
            ticket["replies"].append(
                self.reply_entry(
                    self.next_reply_id(ticket),
                    ticket["userid"],
                    ticket["contactid"],
                    ticket["name"],
                    ticket["email"],
                    message,
                    [],
                )
            )
            ticket["status"], ticket["lastreply"] = "Customer-Reply", ticket["replies"][-1]["date"]
            return {"replyid": ticket["replies"][-1]["replyid"]}

    @staticmethod
    def next_reply_id(ticket: dict) -> int:
        return max(r["replyid"] for r in ticket["replies"]) + 1
