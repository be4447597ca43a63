"""Particle Space (docs/providers.md §5; seed 004).

A key exchange, then form-urlencoded calls with `Authorization: Bearer <token>`:
`POST /api/v1/authenticate` (secret_key + publish_key) gives a short-lived token;
`POST /api/v1/ticket/new` creates; `PUT /api/v1/ticket/{id}` replaces the ticket whole.
There is no read, list, comment or webhook endpoint: the console's copy is the record.

Assumed where the docs are silent (2026-11):
- The token answer is `{"data": {"token": ...}}` (public client code); `access_token` and
  `expires_in` are taken too if present. Without `expires_in` a token is trusted for 900 s.
- The create answer is undocumented: the id is read from `data.id`, `data.ticket.id`, `id`
  or `ticket_id` (ids look like `tic_…`); there is no ticket number other than the id and no
  URL unless the answer carries one.
- Errors look like Laravel's: `{"status": "error", "message": ..., "errors": {field: [..]}}`
  or `{"error": ..., "message": ...}`, with 400/401/404/422; an HTTP-200 body saying
  `"success": false` or `"status": "error"` is a failure too.
- Columns (the `status` field) are per account; the default map uses the sandbox board's
  columns and admins edit it per account. A ticket may name its own column (extra `column`).
- Account settings `notify`, `automated`, `type` and `contacts` are defaults for tickets
  that leave them blank. With notify on and no contacts anywhere, the API's own refusal is
  reported (on the `contacts` field) rather than guessed at here.
- Particle Space has no priority, requester or due-date field: those stay in the console.
- No rate limit is documented for this shared cloud service: new accounts get a cautious
  5 requests/s with a burst of 10; a 429 is honoured if it comes.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator, validate_email

from providers.base import CREATE, TEST, UPDATE, RemoteRef, lenient_get
from providers.errors import (
    ProviderAuthError,
    ProviderNotFoundError,
    ProviderResponseError,
    ProviderValidationError,
)
from providers.http import ApiRequest, ApiResponse
from providers.tokens import Token, TokenAuthProvider

KEY_PREFIX = re.compile(r"^(sk|pk)_(test|live)_\S+$")
PHONE = re.compile(r"^\+?\d{7,15}$")
NOTIFY_TYPES = ("email", "sms")
#: Particle Space's form field -> the console field (ticket or extra form) it belongs to.
FIELD_FOR = {
    "title": "title",
    "description": "description",
    "status": "status",
    "notify": "notify",
    "automated": "automated",
    "type": "type",
    "contacts": "contacts",
    "time": "time",
    "notifySubject": "notify_subject",
    "notifyMessage": "notify_message",
}


def key_prefix_message(kind: str) -> str:
    return f"Expected a key starting with {kind}_test_ or {kind}_live_."


def key_prefix_validator(kind: str) -> RegexValidator:
    return RegexValidator(rf"^{kind}_(test|live)_\S+$", key_prefix_message(kind))


def flag(value: Any) -> bool | None:
    """A yes/no from a form, JSON or settings value; None when it is left blank."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def split_contacts(value: str) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def bad_contact(contacts: list[str], notify_type: str) -> str | None:
    """The first contact that is not an email (type=email) or phone number (type=sms)."""
    for contact in contacts:
        if notify_type == "sms":
            if not PHONE.match(contact):
                return (
                    f"'{contact}' is not a phone number: use digits only, an optional leading +, "
                    "7 to 15 digits."
                )
        else:
            try:
                validate_email(contact)
            except ValidationError:
                return f"'{contact}' is not a valid email address."
    return None


class ParticleSpaceTicketForm(forms.Form):
    """Particle Space's own ticket fields, kept in Ticket.extra.

    notify/automated are yes/no/blank: blank means "the account's default".
    """

    notify = forms.NullBooleanField(
        required=False, help_text="Notify contacts when the ticket is created or moves."
    )
    automated = forms.NullBooleanField(
        required=False, help_text="Notify again when the ticket stays in a column too long."
    )
    type = forms.ChoiceField(
        required=False,
        choices=[("", "Account default"), ("email", "Email"), ("sms", "SMS")],
        help_text="How to notify.",
    )
    contacts = forms.CharField(
        required=False,
        max_length=2000,
        help_text="Comma-separated emails (type email) or phone numbers (type sms).",
    )
    time = forms.CharField(
        required=False, max_length=50, help_text="When to send the creation notice (optional)."
    )
    notify_subject = forms.CharField(required=False, max_length=255)
    notify_message = forms.CharField(required=False, widget=forms.Textarea)
    column = forms.CharField(
        required=False,
        max_length=100,
        help_text="Board column to put the ticket in, overriding the status map (e.g. ON_HOLD).",
    )

    def clean_contacts(self) -> str:
        return ",".join(split_contacts(self.cleaned_data.get("contacts") or ""))

    def clean_column(self) -> str:
        return (self.cleaned_data.get("column") or "").strip()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        notify_type = cleaned.get("type") or ""
        contacts = split_contacts(cleaned.get("contacts") or "")
        if cleaned.get("notify") is True:
            if not notify_type and "type" not in self.errors:
                self.add_error("type", "Particle Space needs a notification type (email or sms) to notify.")
            if not contacts:
                self.add_error("contacts", "Particle Space needs contacts to notify.")
        if notify_type and contacts:
            problem = bad_contact(contacts, notify_type)
            if problem:
                self.add_error("contacts", problem)
        return cleaned


class ParticleSpaceProvider(TokenAuthProvider):
    default_rate_limit = 5.0
    default_rate_burst = 10
    kind = "particlespace"
    label = "Particle Space"
    capabilities = frozenset({CREATE, UPDATE, TEST})
    unsupported_reasons = {
        "fetch": "Particle Space has no read endpoint; the console's copy is the record.",
        "reply": "Particle Space takes no comments.",
    }
    credential_fields = {
        "secret_key": forms.CharField(
            label="Secret key",
            help_text="sk_test_… or sk_live_…, from Particle Space's API settings.",
            validators=[key_prefix_validator("sk")],
        ),
        "publish_key": forms.CharField(
            label="Publish key",
            help_text="pk_test_… or pk_live_…, of the same mode as the secret key.",
            validators=[key_prefix_validator("pk")],
        ),
    }
    extra_form = ParticleSpaceTicketForm
    demo_settings = {"notify": False, "automated": False}
    # Columns are per Particle Space account (2026-11: these are the sandbox board's);
    # admins edit the map per account. Both resolved and closed land in DONE.
    default_status_map = {
        "outbound": {
            "new": "NEW",
            "open": "OPEN",
            "in_progress": "IN_PROGRESS",
            "on_hold": "ON_HOLD",
            "pending": "PENDING",
            "resolved": "DONE",
            "closed": "DONE",
            "cancelled": "CANCELLED",
        },
        "inbound": {
            "NEW": "new",
            "OPEN": "open",
            "IN_PROGRESS": "in_progress",
            "ON_HOLD": "on_hold",
            "PENDING": "pending",
            "DONE": "resolved",
            "CANCELLED": "cancelled",
        },
    }
    default_priority_map = {}  # Particle Space tickets have no priority.
    # 2026-11: the token lifetime is undocumented ("short-lived"); assume 15 minutes unless
    # the answer says otherwise. A 401 mid-lifetime re-authenticates once anyway.
    default_token_lifetime = 900

    AUTH_PATH = "/api/v1/authenticate"
    CREATE_PATH = "/api/v1/ticket/new"
    # 2026-11: the seed's prose says "ticket/update/tic_…" but its code example (and the
    # docs) use PUT /api/v1/ticket/:id; an account setting `update_path` can override it.
    UPDATE_PATH = "/api/v1/ticket/{id}"

    # --- credentials ---------------------------------------------------------------------
    @classmethod
    def validate_credentials(cls, values: dict[str, Any]) -> dict[str, str]:
        """Errors by credential key (none when the pair is usable).

        Both keys must carry their prefix (sk_…/pk_…) and the same mode (test or live).
        """
        cleaned = {key: str(values.get(key) or "").strip() for key in ("secret_key", "publish_key")}
        errors: dict[str, str] = {}
        modes = {}
        for key, kind in (("secret_key", "sk"), ("publish_key", "pk")):
            match = KEY_PREFIX.match(cleaned[key])
            if not match or match.group(1) != kind:
                errors[key] = key_prefix_message(kind)
            else:
                modes[key] = match.group(2)
        if not errors and modes["secret_key"] != modes["publish_key"]:
            errors["publish_key"] = (
                f"The secret key is a {modes['secret_key']} key but the publish key is a "
                f"{modes['publish_key']} key: use a pair of the same mode."
            )
        return errors

    # --- auth (key exchange) -------------------------------------------------------------
    def build_token_request(self, refresh_token: str = "") -> ApiRequest:
        # No refresh tokens: every renewal is a fresh key exchange.
        return ApiRequest(
            "POST",
            self.AUTH_PATH,
            form={"secret_key": self.credential("secret_key"), "publish_key": self.credential("publish_key")},
        )

    def parse_token(self, data: Any) -> Token:
        token = lenient_get(data, "data.token", "data.access_token", "token", "access_token")
        try:
            expires_in = float(lenient_get(data, "data.expires_in", "expires_in"))
        except (TypeError, ValueError):
            expires_in = None  # absent or unreadable: default_token_lifetime applies
        return Token(access_token=str(token or ""), expires_in=expires_in)

    # --- create and update (the same form; update replaces every field) ------------------
    def ticket_fields(self, ticket) -> dict[str, Any]:
        extra = ticket.extra or {}

        def chosen(key: str) -> Any:
            value = extra.get(key)
            return value if value not in (None, "") else self.setting(key)

        notify = bool(flag(chosen("notify")))
        fields: dict[str, Any] = {
            "title": ticket.title,
            "description": self.description_with_marker(ticket),
            "status": (extra.get("column") or "").strip() or self.remote_status_for(ticket.status),
            "notify": 1 if notify else 0,
        }
        if notify:
            # As in the seed's example: time goes even when blank; subject and message only
            # when set (a PUT replaces the whole ticket, so leaving them out clears them).
            fields.update(
                {
                    "time": extra.get("time") or "",
                    "type": chosen("type") or "",
                    "contacts": ",".join(split_contacts(str(chosen("contacts") or ""))),
                }
            )
            for key, name in (("notify_subject", "notifySubject"), ("notify_message", "notifyMessage")):
                if extra.get(key):
                    fields[name] = extra[key]
        fields["automated"] = 1 if flag(chosen("automated")) else 0
        return fields

    def build_create(self, ticket) -> ApiRequest:
        return ApiRequest("POST", self.CREATE_PATH, form=self.ticket_fields(ticket))

    def parse_create(self, data: Any, ticket) -> RemoteRef:
        remote_id = lenient_get(data, "data.id", "data.ticket.id", "data.ticket_id", "id", "ticket_id")
        if not remote_id:
            raise ProviderResponseError("Particle Space answered success without a ticket id.")
        return RemoteRef(
            remote_id=str(remote_id),
            remote_number=str(remote_id),
            remote_url=str(lenient_get(data, "data.url", "data.ticket.url", "url") or ""),
            remote_status=str(
                lenient_get(data, "data.status", "data.ticket.status") or self.ticket_fields(ticket)["status"]
            ),
        )

    def build_update(self, ticket) -> ApiRequest:
        # 2026-11: PUT is a full replacement (description required too): send everything.
        path = (self.setting("update_path") or self.UPDATE_PATH).format(id=ticket.remote_id)
        return ApiRequest("PUT", path, form=self.ticket_fields(ticket))

    def parse_update(self, data: Any, ticket) -> RemoteRef:
        # No read-back exists, so the column just sent is the best knowledge of the remote state.
        return RemoteRef(
            remote_id=ticket.remote_id,
            remote_number=ticket.remote_number or ticket.remote_id,
            remote_url=ticket.remote_url or "",
            remote_status=str(lenient_get(data, "data.status") or self.ticket_fields(ticket)["status"]),
        )

    # --- test: there is no cheap read endpoint, so authenticating is the test -----------
    def test_connection(self) -> str:
        self.require(TEST)
        self.reauthorize()  # drop any cached token: the keys themselves are being tested
        self.access_token()
        return "Authenticated: Particle Space issued a token."

    # --- errors --------------------------------------------------------------------------
    def check_body(self, data: Any) -> None:
        if not isinstance(data, dict):
            return
        failed = data.get("success") is False or str(data.get("success")).lower() == "false"
        if not (failed or str(data.get("status", "")).lower() in ("error", "failed")):
            return
        message = self.error_message(data, None)
        lowered = message.lower()
        if any(word in lowered for word in ("api key", "token", "unauthenticated", "unauthorized")):
            raise ProviderAuthError(message)
        if "not found" in lowered:
            raise ProviderNotFoundError(message)
        raise ProviderValidationError(message, field_errors=self.field_errors(data))

    def error_message(self, data: Any, response: ApiResponse | None) -> str:
        if isinstance(data, dict):
            message = next(
                (str(data[k]) for k in ("message", "error") if isinstance(data.get(k), str) and data[k]),
                "",
            )
            # Laravel's top-level message only summarises `errors` ("... (and 1 more error)").
            details = [m for messages in self.field_errors(data).values() for m in messages]
            if details or message:
                return " ".join(details) or message
        if response is None:
            return "Particle Space reported a failure without a message."
        return super().error_message(data, response)

    def field_errors(self, data: Any, response: ApiResponse | None = None) -> dict[str, list[str]]:
        """Laravel-style `errors` ({field: [messages]}) mapped onto console fields."""
        errors = data.get("errors") if isinstance(data, dict) else None
        if not isinstance(errors, dict):
            return {}
        mapped: dict[str, list[str]] = {}
        for field, messages in errors.items():
            texts = [str(m) for m in (messages if isinstance(messages, list) else [messages])]
            mapped.setdefault(FIELD_FOR.get(str(field), "__all__"), []).extend(texts)
        return mapped
