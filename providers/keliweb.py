"""Keliweb, a WHMCS-backed API (docs/providers.md §3; seed 002).

An OAuth password grant at `POST /oauth/token` (Laravel Passport style, on the same host as
the API) gives a Bearer token; every API call is a POST of form fields as multipart/form-data
with `Authorization: Bearer <token>` and `X-Requested-With: XMLHttpRequest`. The parameters
and answers are WHMCS's (OpenTicket, GetTicket, AddTicketReply): failures come back as
HTTP 200 with `{"result": "error", "message": ...}`. There is no update or close endpoint, so
a ticket's fields cannot change after creation: the console offers a reply instead.

Assumed where the docs are silent (2026-11):
- The ticket page is the WHMCS client-area URL `{client_area_url}/viewticket.php?tid=&c=`;
  `client_area_url` is an account setting that defaults to the account's base URL.
- Without a client ID WHMCS wants a name and an e-mail: the requester's, with the e-mail's
  local part standing in for a missing name. With a client ID (ticket or account setting)
  WHMCS takes both from the client, so neither is sent.
- `customfields` is base64 of a PHP `serialize()`d flat array (`php_serialize` below).
- Until Django-storage attachments are wired, `ticket.extra["attachments"]` holds
  `[{"name": ..., "data_base64": ...}]`.
- No rate limit is documented; WHMCS hosts commonly throttle per IP, so new accounts get a
  cautious 5 requests/s with a burst of 10; a 429 is honoured if it comes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from typing import Any
from urllib.parse import urlencode

from django import forms

from console.jsonguard import GuardedJSONField
from providers.base import CREATE, FETCH, REPLY, TEST, RemoteRef, RemoteReply, RemoteState
from providers.errors import (
    ProviderAuthError,
    ProviderConfigurationError,
    ProviderNotFoundError,
    ProviderResponseError,
    ProviderValidationError,
)
from providers.http import ApiRequest
from providers.ticket_input import read_attachment
from providers.tokens import Token, TokenAuthProvider

AJAX_HEADERS = {"X-Requested-With": "XMLHttpRequest", "Accept": "application/json"}
PHP_INT_KEY = re.compile(r"^(0|-?[1-9][0-9]{0,17})$")  # keys PHP turns into integers


# --- WHMCS encodings (pure) --------------------------------------------------------------------
def php_serialize(values: dict[str | int, str | int | bool]) -> str:
    """PHP's `serialize()` of a flat array, as WHMCS `customfields` expects it.

    `{"1": "Google"}` -> `a:1:{i:1;s:6:"Google";}`: numeric keys become integers like in PHP
    arrays, and string lengths count UTF-8 bytes.
    """

    def scalar(value: Any) -> str:
        if isinstance(value, bool):
            return f"b:{int(value)};"
        if isinstance(value, int):
            return f"i:{value};"
        if isinstance(value, str):
            return f's:{len(value.encode())}:"{value}";'
        raise ValueError(f"Custom field values must be text or numbers, not {type(value).__name__}.")

    parts = []
    for key, value in values.items():
        key_text = str(key)
        parts.append(f"i:{key_text};" if PHP_INT_KEY.match(key_text) else scalar(key_text))
        parts.append(scalar(value))
    return f"a:{len(values)}:{{{''.join(parts)}}}"


def encode_customfields(values: dict[str | int, str | int | bool]) -> str:
    return base64.b64encode(php_serialize(values).encode()).decode()


def encode_attachments(files: list[tuple[str, bytes]]) -> str:
    """base64 of the JSON array `[{"name": ..., "data": <base64 of the file>}]` (seed 002)."""
    items = [{"name": name, "data": base64.b64encode(data).decode()} for name, data in files]
    return base64.b64encode(json.dumps(items).encode()).decode()


def decode_extra_attachments(items: Any) -> list[tuple[str, bytes]]:
    """`ticket.extra["attachments"]` (`[{"name", "data_base64"}]`) as (name, bytes) pairs."""
    if not isinstance(items, list):
        raise ValueError("Attachments must be a list of {name, data_base64} objects.")
    files = []
    for item in items:
        name = str((item or {}).get("name") or "").strip() if isinstance(item, dict) else ""
        if not name:
            raise ValueError("Every attachment needs a file name.")
        try:
            data = base64.b64decode(str(item.get("data_base64") or ""), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"The content of '{name}' is not valid base64.") from exc
        files.append((name, data))
    return files


# --- the provider's own ticket fields -----------------------------------------------------------
class KeliwebTicketForm(forms.Form):
    """Keliweb's own ticket fields, kept in Ticket.extra."""

    deptid = forms.IntegerField(
        required=False,
        min_value=1,
        label="Department ID",
        help_text="The Keliweb department to open the ticket in (the account's default when blank).",
    )
    clientid = forms.IntegerField(required=False, min_value=1, label="Client ID")
    contactid = forms.IntegerField(
        required=False, min_value=1, label="Contact ID", help_text="A contact of the client above."
    )
    serviceid = forms.IntegerField(required=False, min_value=1, label="Service ID")
    domainid = forms.IntegerField(required=False, min_value=1, label="Domain ID")
    markdown = forms.BooleanField(required=False, help_text="Render the message as Markdown.")
    customfields = GuardedJSONField(
        required=False, label="Custom fields", help_text='Custom field ID: value, e.g. {"12": "Google"}.'
    )
    attachments = GuardedJSONField(
        required=False, help_text='Files as [{"name": "log.txt", "data_base64": "..."}].'
    )

    def clean_customfields(self) -> dict:
        value = self.cleaned_data.get("customfields") or {}
        if not isinstance(value, dict) or not all(
            re.fullmatch(r"[1-9][0-9]*", str(k)) and isinstance(v, (str, int)) for k, v in value.items()
        ):
            raise forms.ValidationError(
                'Custom fields must be a JSON object of field ID: value, e.g. {"12": "Google"}.'
            )
        return value

    def clean_attachments(self) -> list:
        value = self.cleaned_data.get("attachments") or []
        try:
            decode_extra_attachments(value)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return value

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("contactid") and not cleaned.get("clientid"):
            self.add_error("contactid", "A contact belongs to a client: give the client ID too.")
        if cleaned.get("serviceid") and cleaned.get("domainid"):
            self.add_error("domainid", "Give a service or a domain, not both.")
        return cleaned


# --- the provider ------------------------------------------------------------------------------
class KeliwebProvider(TokenAuthProvider):
    default_rate_limit = 5.0
    default_rate_burst = 10
    kind = "keliweb"
    label = "Keliweb"
    capabilities = frozenset({CREATE, FETCH, REPLY, TEST})
    test_probe_is_missing_ticket = True
    accepts_attachments = True
    unsupported_reasons = {
        "update": "Keliweb cannot update a ticket after it is created — add a reply instead.",
    }
    credential_fields = {
        "client_id": forms.CharField(label="OAuth client ID", help_text="From Keliweb's API settings."),
        "client_secret": forms.CharField(label="OAuth client secret"),
        "username": forms.CharField(label="Username", help_text="The Keliweb login the API acts as."),
        "password": forms.CharField(label="Password"),
    }
    demo_settings = {"deptid": 1}
    extra_form = KeliwebTicketForm
    # Keliweb cannot change a ticket's status; the outbound half exists so the map reads
    # the same as other providers' and stays editable.
    default_status_map = {
        "outbound": {
            "new": "Open",
            "open": "Open",
            "in_progress": "In Progress",
            "on_hold": "On Hold",
            "pending": "Answered",
            "resolved": "Closed",
            "closed": "Closed",
            "cancelled": "Closed",
        },
        "inbound": {
            "Open": "open",
            "Answered": "pending",
            "Customer-Reply": "open",
            "Closed": "closed",
            "On Hold": "on_hold",
            "In Progress": "in_progress",
        },
    }
    default_priority_map = {"urgent": "High", "high": "High", "medium": "Medium", "low": "Low"}
    fetch_batch_size = 1  # get-ticket reads one ticket
    reads_conversation = True  # get-ticket answers with the ticket's replies

    TOKEN_PATH = "/oauth/token"  # noqa: S105 - a path, not a secret
    OPEN_TICKET_PATH = "/api/v2/keliweb/open-ticket"
    GET_TICKET_PATH = "/api/v2/keliweb/get-ticket"
    ADD_REPLY_PATH = "/api/v2/keliweb/add-ticket-reply"

    # --- auth (Passport password grant, same host as the API) ------------------------------
    def build_token_request(self, refresh_token: str = "") -> ApiRequest:
        form = {"client_id": self.credential("client_id"), "client_secret": self.credential("client_secret")}
        if refresh_token:
            form |= {"grant_type": "refresh_token", "refresh_token": refresh_token}
        else:
            form |= {
                "grant_type": "password",
                "username": self.credential("username"),
                "password": self.credential("password"),
            }
        return ApiRequest("POST", self.TOKEN_PATH, form=form, headers={"Accept": "application/json"})

    def parse_token(self, data: Any) -> Token:
        return Token(
            access_token=str(data["access_token"]),
            refresh_token=str(data.get("refresh_token") or ""),
            expires_in=float(data["expires_in"]) if data.get("expires_in") else None,
        )

    def api_request(self, path: str, form: dict[str, Any]) -> ApiRequest:
        # 2026-11: the seed sends multipart/form-data and X-Requested-With on every call; without
        # the header Laravel treats a refused call as a browser visit (a redirect to a login page).
        return ApiRequest("POST", path, form=form, multipart=True, headers=dict(AJAX_HEADERS))

    # --- create ------------------------------------------------------------------------------
    def build_create(self, ticket) -> ApiRequest:
        extra = ticket.extra or {}
        form: dict[str, Any] = {
            "deptid": self.department_for(ticket),
            "subject": ticket.title,
            "message": self.description_with_marker(ticket),
        }
        clientid = extra.get("clientid") or self.setting("clientid")
        if clientid:
            form["clientid"] = clientid
            if extra.get("contactid"):
                form["contactid"] = extra["contactid"]
        else:
            email = (ticket.requester_email or "").strip()
            name = (ticket.requester_name or "").strip() or email.split("@")[0]
            form |= {key: value for key, value in (("name", name), ("email", email)) if value}
        # The extra form refuses both; should both arrive anyway, Keliweb says which is wrong.
        for key in ("serviceid", "domainid"):
            if extra.get(key):
                form[key] = extra[key]
        priority = self.remote_priority_for(ticket.priority)
        if priority:
            form["priority"] = priority
        markdown = extra.get("markdown", self.setting("markdown"))
        if markdown is not None:
            form["markdown"] = bool(markdown)
        # The extra form checks both; a ticket saved around it is refused here, not sent.
        if extra.get("customfields"):
            try:
                form["customfields"] = encode_customfields(extra["customfields"])
            except (AttributeError, ValueError) as exc:
                message = "Custom fields must be a JSON object of field ID: text or number."
                raise ProviderValidationError(message, field_errors={"customfields": [message]}) from exc
        files = [(a.name, read_attachment(a)) for a in self.stored_attachments(ticket)]
        if extra.get("attachments"):
            try:
                files += decode_extra_attachments(extra["attachments"])
            except ValueError as exc:
                raise ProviderValidationError(str(exc), field_errors={"attachments": [str(exc)]}) from exc
        if files:
            # Keliweb takes files inline: base64 of the JSON array of {name, data}.
            form["attachments"] = encode_attachments(files)
        return self.api_request(self.OPEN_TICKET_PATH, form)

    def department_for(self, ticket) -> int:
        value = (ticket.extra or {}).get("deptid") or self.setting("deptid")
        try:
            deptid = int(value) if value not in (None, "") else 0
        except (TypeError, ValueError):
            deptid = 0
        if deptid < 1:
            raise ProviderConfigurationError(
                "Keliweb needs a department ID ('deptid'): set it in the ticket's Keliweb fields "
                f"or in the settings of the account '{self.account.name}'."
            )
        return deptid

    def parse_create(self, data: Any, ticket) -> RemoteRef:
        ticket_id = data.get("id") if isinstance(data, dict) else None
        if ticket_id in (None, ""):
            raise ProviderResponseError("Keliweb answered success without a ticket id.")
        tid, access_key = str(data.get("tid") or ""), str(data.get("c") or "")
        return RemoteRef(
            remote_id=str(ticket_id),
            remote_number=tid,
            remote_url=self.ticket_url(tid, access_key) if tid and access_key else "",
            remote_status="Open",  # WHMCS opens every API ticket as Open
        )

    def ticket_url(self, tid: str, access_key: str) -> str:
        base = str(self.setting("client_area_url") or self.account.base_url).rstrip("/")
        return f"{base}/viewticket.php?{urlencode({'tid': tid, 'c': access_key})}"

    # --- fetch (one ticket per call) ------------------------------------------------------------
    def build_fetch(self, tickets) -> ApiRequest:
        return self.api_request(self.GET_TICKET_PATH, {"ticketid": tickets[0].remote_id})

    def parse_fetch(self, data: Any, tickets) -> list[RemoteState]:
        if not isinstance(data, dict) or not data.get("status"):
            raise ProviderResponseError("Keliweb's get-ticket answer has no ticket status.")
        replies = (data.get("replies") or {}).get("reply") or []
        replies = replies if isinstance(replies, list) else [replies]
        # WHMCS sorts replies ASC unless asked otherwise; a stable sort keeps that order for
        # replies within the same second, so the last one is the latest.
        last = sorted(replies, key=lambda r: str(r.get("date") or ""))[-1] if replies else None
        fields = {
            key: data.get(key)
            for key in ("tid", "c", "subject", "priority", "deptid", "deptname", "admin", "lastreply", "flag")
        }
        fields["reply_count"] = len(replies)
        if last:
            fields["last_reply"] = {
                "date": last.get("date", ""),
                "author": last.get("admin") or last.get("name") or "",
                "by_staff": bool(last.get("admin")),
                "message": last.get("message", ""),
            }
        remote_id = str(data.get("ticketid") or tickets[0].remote_id)
        return [
            RemoteState(remote_id, str(data["status"]), fields=fields, replies=self.conversation(replies))
        ]

    def ref_from_state(self, state: RemoteState) -> RemoteRef:
        tid, access_key = str(state.fields.get("tid") or ""), str(state.fields.get("c") or "")
        return RemoteRef(
            remote_id=state.remote_id,
            remote_number=tid,
            remote_status=state.remote_status,
            remote_url=self.ticket_url(tid, access_key) if tid and access_key else "",
        )

    @staticmethod
    def conversation(replies: list[Any]) -> list[RemoteReply]:
        """The replies after the opening message, oldest first.

        WHMCS lists the ticket's opening message as reply 0: that is the description the
        console sent, shown on the ticket already. A staff reply names its `admin`; anything
        else came from the requester's side (the console's own replies among them).
        """
        conversation = []
        entries = [r for r in replies if isinstance(r, dict)]
        for entry in sorted(entries, key=lambda r: str(r.get("date") or "")):
            reply_id = str(entry.get("replyid") or "").strip()
            if reply_id == "0":
                continue
            admin = str(entry.get("admin") or "").strip()
            if not reply_id:  # not seen in WHMCS answers; the entry itself identifies it then
                reply_id = (
                    "sha256:"
                    + hashlib.sha256(
                        json.dumps([entry.get("date"), admin, entry.get("message")]).encode()
                    ).hexdigest()
                )
            conversation.append(
                RemoteReply(
                    remote_id=reply_id,
                    body=str(entry.get("message") or ""),
                    author=admin or str(entry.get("name") or "").strip(),
                    by_provider_staff=bool(admin),
                    date=str(entry.get("date") or ""),
                )
            )
        return conversation

    # --- reply -----------------------------------------------------------------------------------
    def build_reply(self, ticket, text: str) -> ApiRequest:
        extra = ticket.extra or {}
        form: dict[str, Any] = {"ticketid": ticket.remote_id, "message": text}
        email = (ticket.requester_email or "").strip()
        name = (ticket.requester_name or "").strip() or email.split("@")[0]
        form |= {key: value for key, value in (("name", name), ("email", email)) if value}
        markdown = extra.get("markdown", self.setting("markdown"))
        if markdown is not None:
            form["markdown"] = bool(markdown)
        return self.api_request(self.ADD_REPLY_PATH, form)

    # --- test ------------------------------------------------------------------------------------
    def build_test(self) -> ApiRequest:
        # No ping endpoint: ask for a ticket id that cannot exist. "Ticket ID Not Found" proves
        # the token was accepted; a refused token answers 401 "Unauthenticated.".
        return self.api_request(self.GET_TICKET_PATH, {"ticketid": "0"})

    def parse_test(self, data: Any) -> str:
        return "Connected: Keliweb issued a token and accepted it."

    # --- errors ----------------------------------------------------------------------------------
    #: Words of a WHMCS error message -> the console fields it is about (first match wins).
    FIELD_HINTS: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("cannot both", ("domainid",)),
        ("name and email", ("requester_name", "requester_email")),
        ("email", ("requester_email",)),
        ("department", ("deptid",)),
        ("client id", ("clientid",)),
        ("contact id", ("contactid",)),
        ("service id", ("serviceid",)),
        ("domain id", ("domainid",)),
        ("subject", ("title",)),
        ("priority", ("priority",)),
        ("custom field", ("customfields",)),
        ("attachment", ("attachments",)),
        ("message", ("description",)),
    )
    AUTH_WORDS = ("unauthenticated", "authentication failed", "invalid access", "access denied", "invalid ip")

    def check_body(self, data: Any) -> None:
        if not (isinstance(data, dict) and str(data.get("result", "")).lower() == "error"):
            return
        message = str(data.get("message") or "Keliweb reported an error without a message.")
        lowered = message.lower()
        if any(word in lowered for word in self.AUTH_WORDS):
            raise ProviderAuthError(message)
        if "ticket" in lowered and "not found" in lowered:
            raise ProviderNotFoundError(message)
        for words, fields in self.FIELD_HINTS:
            if words in lowered:
                raise ProviderValidationError(message, field_errors={f: [message] for f in fields})
        raise ProviderValidationError(message)
