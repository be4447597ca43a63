"""Motadata ServiceOps, v1 incident API (docs/providers.md §2; seed 001).

Auth is `Authorization: Bearer <token>`. The token is either pasted by the admin
(credential `access_token`, used as-is) or obtained by the console with the OAuth password
grant: `POST /api/oauth/token` with `Basic base64(client_id:client_secret)` and the form
fields username, password, grant_type=password; it lives 7199 s and is refreshed with
grant_type=refresh_token (shared handling in providers/tokens.py). Incidents are JSON:
create `POST /api/v1/incident`, update `POST /api/v1/incident/{id}`, read
`GET /api/v1/incident/{id}`. v1 has no comment or reply endpoint.

Assumed where the docs are silent (2026-11):
- Errors are the success envelope with another `returnCode` and a `userMessage`, sent with
  HTTP 4xx (or 200); we classify by the HTTP status, then by the message's words.
- Token errors look like Spring Security OAuth2's (`{"error", "error_description"}`), and
  may echo the token: messages are redacted before they are shown anywhere.
- When both a pasted token and the four grant fields are stored, the grant wins: its tokens
  can be renewed, a pasted one cannot.
- The web link of an incident is `<base_url>/t/request/<id>`.
- customFieldValueDetails value keys: only `stringValue` is documented; the others follow
  its pattern: integerValue, doubleValue, booleanValue, longValue, integerListValue,
  stringListValue, bigStringValue (CUSTOM_FIELD_TYPES).
- `attachmentsRefNames` is sent with the create only: resending it on every update could
  attach the same files again.
- No rate limit is documented (ServiceOps is usually run by the customer): new accounts get
  10 requests/s with a burst of 20, the console's default; a 429 is honoured if it comes.
"""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import quote

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from console.jsonguard import GuardedJSONField
from providers.base import CREATE, FETCH, TEST, UPDATE, RemoteRef, RemoteState, lenient_get
from providers.errors import (
    ProviderAuthError,
    ProviderConfigurationError,
    ProviderNotFoundError,
    ProviderResponseError,
    ProviderValidationError,
)
from providers.http import ApiRequest, ApiResponse
from providers.ticket_input import AttachmentLike, read_attachment
from providers.tokens import Token, TokenAuthProvider

IMPACTS = ("LOW", "ONUSER", "ONDEPARTMENT", "ONBUSINESS")
URGENCIES = ("LOW", "MEDIUM", "HIGH", "URGENT")  # priority takes the same values
STATUSES = ("Open", "In Progress", "Pending", "Resolved", "Closed")
#: Console impact -> Motadata impact (an account may override it with settings["impact_map"]).
IMPACT_MAP = {"low": "ONUSER", "medium": "ONDEPARTMENT", "high": "ONBUSINESS"}
GRANT_FIELDS = ("client_id", "client_secret", "username", "password")
REQUESTER_EMAIL_REQUIRED = "Motadata needs a requester email"
NEEDS_CREDENTIALS = "Paste an access token, or fill in client ID, client secret, username and password."

#: type code -> (documented name, value key, what the value must be). Only stringValue is
#: documented; the other keys are assumed from its pattern (2026-11).
CUSTOM_FIELD_TYPES: dict[int, tuple[str, str, str]] = {
    1: ("STRING", "stringValue", "text"),
    2: ("INTEGER", "integerValue", "a whole number"),
    3: ("DOUBLE", "doubleValue", "a number"),
    4: ("BOOLEAN", "booleanValue", "true or false"),
    5: ("LONG", "longValue", "a whole number"),
    7: ("INTEGER LIST", "integerListValue", "a list of whole numbers"),
    8: ("STRING LIST", "stringListValue", "a list of texts"),
    10: ("BIG STRING", "bigStringValue", "text"),
}
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)

#: Words in a Motadata message -> the console field it is about (first match wins).
MESSAGE_FIELDS = (
    ("ccemail", "cc_emails"),
    ("requesteremail", "requester_email"),
    ("requester email", "requester_email"),
    ("requestername", "requester_name"),
    ("requester name", "requester_name"),
    ("subject", "title"),
    ("category", "category_name"),
    ("location", "location_name"),
    ("attachment", "attachments_ref_names"),
    ("custom field", "custom_fields"),
    ("customfield", "custom_fields"),
    ("impact", "impact"),
    ("urgency", "urgency"),
    ("priority", "priority"),
    ("status", "status"),
    ("tags", "tags"),
    ("description", "description"),
)
AUTH_WORDS = ("unauthori", "authenticat", "access denied", "forbidden", "permission", "token")


def _is_int(value: Any, bounds: tuple[int, int]) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and bounds[0] <= value <= bounds[1]


def _value_fits(type_code: int, value: Any) -> bool:
    if value is None:  # clears the field (the seed's example sends "stringValue": null)
        return True
    if type_code in (1, 10):
        return isinstance(value, str)
    if type_code == 2:
        return _is_int(value, INT32)
    if type_code == 5:
        return _is_int(value, INT64)
    if type_code == 3:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if type_code == 4:
        return isinstance(value, bool)
    if type_code == 7:
        return isinstance(value, list) and all(_is_int(v, INT32) for v in value)
    return isinstance(value, list) and all(isinstance(v, str) for v in value)  # 8


def custom_field_errors(details: Any) -> list[str]:
    """What is wrong with a customFieldValueDetails map (empty when it is right)."""
    if not isinstance(details, dict):
        return ['Enter a JSON object such as {"35": {"type": 1, "stringValue": "Open"}}.']
    errors = []
    for field_id, spec in details.items():
        where = f'Custom field "{field_id}"'
        if not str(field_id).isdigit():
            errors.append(f"{where}: the key must be the field's numeric id.")
            continue
        type_code = spec.get("type") if isinstance(spec, dict) else None
        if not _is_int(type_code, INT32) or type_code not in CUSTOM_FIELD_TYPES:
            codes = ", ".join(f"{code} ({name})" for code, (name, _, _) in CUSTOM_FIELD_TYPES.items())
            errors.append(f'{where}: "type" must be one of {codes}.')
            continue
        name, value_key, expected = CUSTOM_FIELD_TYPES[type_code]
        others = set(spec) - {"type", value_key}
        if value_key not in spec or others:
            errors.append(f'{where}: type {type_code} ({name}) takes exactly one "{value_key}".')
        elif not _value_fits(type_code, spec[value_key]):
            errors.append(f'{where}: "{value_key}" must be {expected} (type {type_code}, {name}).')
    return errors


def split_list(value: Any) -> list[str]:
    """A list of strings from a list or a comma/semicolon/newline-separated string."""
    if value in (None, ""):
        return []
    items = value if isinstance(value, list | tuple) else re.split(r"[,;\n]", str(value))
    return [str(item).strip() for item in items if str(item).strip()]


class StringListField(forms.Field):
    """A list of strings, entered as a JSON list or as comma-separated text."""

    def to_python(self, value: Any) -> list[str]:
        if isinstance(value, list | tuple) and not all(isinstance(v, str) for v in value):
            raise ValidationError("Enter text values only.")
        return split_list(value)


class EmailListField(StringListField):
    def validate(self, value: list[str]) -> None:
        super().validate(value)
        for email in value:
            try:
                validate_email(email)
            except ValidationError as exc:
                raise ValidationError(f'"{email}" is not a valid email address.') from exc


class EnumField(forms.ChoiceField):
    """One of Motadata's upper-case enum values; lower case is accepted and corrected."""

    def __init__(self, values: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(
            choices=[("", "—")] + [(v, v) for v in values],
            required=False,
            error_messages={"invalid_choice": f"Must be one of {', '.join(values)}."},
            **kwargs,
        )

    def to_python(self, value: Any) -> str:
        return super().to_python(value).strip().upper()


class MotadataTicketForm(forms.Form):
    """Motadata's own incident fields, kept in Ticket.extra."""

    category_name = forms.CharField(
        required=False, max_length=200, help_text="Motadata category; the account's default when blank."
    )
    impact = EnumField(IMPACTS, help_text="Overrides the impact derived from the ticket's impact.")
    urgency = EnumField(URGENCIES, help_text="Defaults to the ticket's priority.")
    cc_emails = EmailListField(required=False, help_text="Addresses to notify, comma-separated.")
    location_name = forms.CharField(
        required=False, max_length=200, help_text="Must exist in Motadata with exactly this name."
    )
    custom_fields = GuardedJSONField(
        required=False,
        help_text='customFieldValueDetails, e.g. {"35": {"type": 1, "stringValue": "Open"}}; '
        "field ids come from the account's custom-field list.",
    )
    attachments_ref_names = StringListField(
        required=False, help_text="refFileName values of files already uploaded to Motadata."
    )

    def clean_custom_fields(self) -> dict:
        value = self.cleaned_data.get("custom_fields")
        if value in (None, "", {}):
            return {}
        errors = custom_field_errors(value)
        if errors:
            raise ValidationError(errors)
        return value


class MotadataProvider(TokenAuthProvider):
    kind = "motadata"
    label = "Motadata ServiceOps"
    capabilities = frozenset({CREATE, UPDATE, FETCH, TEST})
    accepts_attachments = True
    unsupported_reasons = {
        "reply": "Motadata's v1 incident API has no comment or reply endpoint: "
        "put the information in the description and update the ticket instead.",
    }
    credential_fields = {
        "client_id": forms.CharField(
            required=False, label="Client ID", help_text="From Admin > Integrations > REST API."
        ),
        "client_secret": forms.CharField(required=False, label="Client secret"),
        "username": forms.CharField(required=False, help_text="The Motadata user the API acts as."),
        "password": forms.CharField(required=False),
        "access_token": forms.CharField(
            required=False,
            label="Access token",
            help_text="Instead of the four fields above: a token you obtained yourself. "
            "It is not renewed, so it stops working when it expires (about 2 hours).",
        ),
    }
    extra_form = MotadataTicketForm
    demo_settings = {"category_name": "Incident"}
    default_status_map = {
        "outbound": {
            "new": "Open",
            "open": "Open",
            "in_progress": "In Progress",
            "on_hold": "Pending",
            "pending": "Pending",
            "resolved": "Resolved",
            "closed": "Closed",
            "cancelled": "Closed",
        },
        "inbound": {
            "Open": "open",
            "In Progress": "in_progress",
            "Pending": "pending",
            "Resolved": "resolved",
            "Closed": "closed",
        },
    }
    default_priority_map = {"low": "LOW", "medium": "MEDIUM", "high": "HIGH", "urgent": "URGENT"}
    default_token_lifetime = 7199
    fetch_batch_size = 1  # one GET per incident; v1 has no search

    TOKEN_PATH = "/api/oauth/token"  # noqa: S105 - a path, not a secret
    INCIDENTS_PATH = "/api/v1/incident"
    INCIDENT_PATH = "/api/v1/incident/{id}"
    FORM_PATH = "/api/ususer/form/{module}"
    UPLOAD_PATH = "/api/oprfile"

    # --- what the admin and ticket forms call -------------------------------------------
    @classmethod
    def validate_credentials(cls, values: dict) -> dict[str, str]:
        """Field errors for a credential set: a token, or all four grant fields."""
        if values.get("access_token") or all(values.get(k) for k in GRANT_FIELDS):
            return {}
        errors = {
            key: "Needed for Motadata's password grant (or paste an access token instead)."
            for key in GRANT_FIELDS
            if not values.get(key)
        }
        if not any(values.get(k) for k in GRANT_FIELDS):
            errors["access_token"] = NEEDS_CREDENTIALS
        return errors

    @classmethod
    def validate_ticket(cls, fields: dict) -> dict[str, list[str]]:
        """Errors Motadata would answer, keyed by console ticket field names."""
        if not str(fields.get("requester_email") or "").strip():
            return {"requester_email": [REQUESTER_EMAIL_REQUIRED]}
        return {}

    # --- auth: tokens ---------------------------------------------------------------------
    def _has_grant(self) -> bool:
        return all(self.credentials.get(k) for k in GRANT_FIELDS)

    def static_token(self) -> str:
        return "" if self._has_grant() else str(self.credentials.get("access_token") or "")

    def build_token_request(self, refresh_token: str = "") -> ApiRequest:
        if not self._has_grant():
            raise ProviderConfigurationError(
                f"The account '{self.account.name}' needs either an access token or client ID, "
                "client secret, username and password."
            )
        client = f"{self.credential('client_id')}:{self.credential('client_secret')}"
        basic = base64.b64encode(client.encode()).decode()
        self.redactor.add(basic)
        if refresh_token:
            form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        else:
            form = {
                "grant_type": "password",
                "username": self.credential("username"),
                "password": self.credential("password"),
            }
        return ApiRequest("POST", self.TOKEN_PATH, form=form, headers={"Authorization": f"Basic {basic}"})

    def parse_token(self, data: Any) -> Token:
        return Token(data["access_token"], data.get("refresh_token") or "", data.get("expires_in"))

    # --- create / update -----------------------------------------------------------------
    def incident_fields(self, ticket) -> dict[str, Any]:
        """The fields create and update share: the ticket's full state."""
        extra = ticket.extra or {}
        priority = self.remote_priority_for(ticket.priority)
        impact_map = self.setting("impact_map") or IMPACT_MAP
        fields: dict[str, Any] = {
            "subject": ticket.title,
            "description": self.description_with_marker(ticket),
            "requesterEmail": ticket.requester_email,
            "requesterName": ticket.requester_name,
            "categoryName": extra.get("category_name") or self.setting("category_name") or "Incident",
            "priority": priority,
            "urgency": extra.get("urgency") or priority,
            "impact": extra.get("impact") or impact_map.get(ticket.impact or ""),
            "locationName": extra.get("location_name") or self.setting("location_name"),
            "customFieldValueDetails": extra.get("custom_fields") or None,
        }
        fields = {k: v for k, v in fields.items() if v not in (None, "")}
        # Lists always go, empty or not, so clearing them in the console clears them remotely.
        fields["tags"] = [str(tag) for tag in (ticket.tags or [])]
        fields["ccEmailSet"] = split_list(extra.get("cc_emails"))
        return fields

    def build_create(self, ticket) -> ApiRequest:
        return self.create_request(ticket, self.stored_attachments(ticket))

    @staticmethod
    def require_requester(ticket) -> None:
        if not (ticket.requester_email or "").strip():
            # Refused here, before anything is sent: Motadata requires it (2026-11: seed 001).
            raise ProviderValidationError(
                REQUESTER_EMAIL_REQUIRED, field_errors={"requester_email": [REQUESTER_EMAIL_REQUIRED]}
            )

    def create_request(self, ticket, attachments: list[AttachmentLike]) -> ApiRequest:
        self.require_requester(ticket)
        body = self.incident_fields(ticket)
        refs = split_list((ticket.extra or {}).get("attachments_ref_names"))
        refs += [a.remote_ref for a in attachments if a.remote_ref]
        if refs:
            body["attachmentsRefNames"] = refs
        return ApiRequest("POST", self.INCIDENTS_PATH, json=body)

    def create(self, ticket) -> RemoteRef:
        # Motadata takes files by upload first (/api/oprfile), then by refFileName in the
        # create. Each new refFileName goes to on_upload, which keeps it with the attachment
        # so a retried create reuses it instead of uploading the file again.
        self.require(CREATE)
        self.require_requester(ticket)  # before any upload: a refused create leaves no stray file
        attachments = self.stored_attachments(ticket)
        for attachment in attachments:
            if not attachment.remote_ref:
                content = read_attachment(attachment)
                ref = self.upload_attachment(attachment.name, content, attachment.content_type)
                self.uploaded(attachment, ref)
        return self.parse_create(self.call(self.create_request(ticket, attachments)), ticket)

    def parse_create(self, data: Any, ticket) -> RemoteRef:
        incident_id = lenient_get(data, "id")
        if incident_id is None:
            raise ProviderResponseError("Motadata answered SUCCESS without an incident id.")
        return self.ref_for(str(incident_id))

    def ref_for(self, incident_id: str, remote_status: str = "") -> RemoteRef:
        return RemoteRef(
            remote_id=incident_id,
            remote_number=incident_id,
            remote_url=f"{self.account.base_url.rstrip('/')}/t/request/{incident_id}",
            remote_status=remote_status,
        )

    def ref_from_state(self, state: RemoteState) -> RemoteRef:
        return self.ref_for(state.remote_id, state.remote_status)

    def incident_path(self, ticket) -> str:
        if not ticket.remote_id:
            raise ProviderValidationError("This ticket has not been created in Motadata yet.")
        return self.INCIDENT_PATH.format(id=quote(str(ticket.remote_id), safe=""))

    def build_update(self, ticket) -> ApiRequest:
        body = self.incident_fields(ticket)
        body["status"] = self.remote_status_for(ticket.status)
        return ApiRequest("POST", self.incident_path(ticket), json=body)

    # --- fetch (one GET per incident) ----------------------------------------------------
    def build_fetch(self, tickets) -> ApiRequest:
        [ticket] = tickets
        return ApiRequest("GET", self.incident_path(ticket))

    def parse_fetch(self, data: Any, tickets) -> list[RemoteState]:
        if not isinstance(data, dict):
            raise ProviderResponseError("Motadata's incident answer is not a JSON object.")
        [ticket] = tickets
        status = lenient_get(data, "status", "statusName") or ""
        fields = {
            key: data.get(key)
            for key in ("subject", "description", "priority", "urgency", "impact", "tags")
            if key in data
        }
        return [RemoteState(str(data.get("id") or ticket.remote_id), str(status), fields=fields)]

    # --- test, custom fields, attachments ------------------------------------------------
    def form_path(self, module: str) -> str:
        return self.FORM_PATH.format(module=quote(module, safe=""))

    def build_test(self) -> ApiRequest:
        return ApiRequest("GET", self.form_path(self.setting("form_module") or "request"))

    def parse_test(self, data: Any) -> str:
        count = f" ({len(data)} form fields visible)" if isinstance(data, list) else ""
        return f"Connected: Motadata accepted the credentials{count}."

    def custom_fields(self, module: str = "request") -> Any:
        """The form description of `module` with its custom field ids, raw, for the admin."""
        return self.call(ApiRequest("GET", self.form_path(module)))

    def upload_attachment(self, name: str, content: bytes, content_type: str) -> str:
        """Upload a file; returns the refFileName to put into attachmentsRefNames."""
        request = ApiRequest("POST", self.UPLOAD_PATH, files={"file": (name, content, content_type)})
        ref = lenient_get(self.call(request), "refFileName")
        if not ref:
            raise ProviderResponseError("Motadata accepted the file but gave no refFileName.")
        return str(ref)

    # --- errors --------------------------------------------------------------------------
    def interpret(self, response: ApiResponse) -> Any:
        data = response.json()
        if 400 <= response.status < 500 and response.status != 429 and self.is_failure(data):
            self.raise_failure(data, response.status)
        return super().interpret(response)

    def check_body(self, data: Any) -> None:
        if self.is_failure(data):  # the envelope can say failure with HTTP 200 as well
            self.raise_failure(data, None)

    @staticmethod
    def is_failure(data: Any) -> bool:
        return isinstance(data, dict) and "returnCode" in data and data["returnCode"] != "SUCCESS"

    def failure_message(self, data: dict) -> str:
        return self.redactor.text(
            str(data.get("userMessage") or f"Motadata answered {data.get('returnCode')}.")
        )

    def field_errors(self, data: Any, response: ApiResponse | None) -> dict[str, list[str]]:
        """The console field a failure envelope's message is about, by the words it uses."""
        if not self.is_failure(data):
            return {}
        message = self.failure_message(data)
        field = next((name for word, name in MESSAGE_FIELDS if word in message.lower()), None)
        return {field: [message]} if field else {}

    def raise_failure(self, data: dict, http_status: int | None) -> None:
        message = self.failure_message(data)
        lowered = message.lower()
        if http_status in (401, 403) or any(word in lowered for word in AUTH_WORDS):
            raise ProviderAuthError(message, http_status=http_status)
        field_errors = self.field_errors(data, None)
        if http_status == 404 or (not field_errors and "not found" in lowered):
            raise ProviderNotFoundError(message, http_status=http_status)
        raise ProviderValidationError(message, field_errors=field_errors, http_status=http_status)

    def error_message(self, data: Any, response: ApiResponse) -> str:
        message = ""
        if isinstance(data, dict):
            message = next(
                (
                    str(data[k])
                    for k in ("userMessage", "error_description", "message", "error")
                    if isinstance(data.get(k), str) and data[k]
                ),
                "",
            )
        message = self.redactor.text(message or super().error_message(data, response))
        if response.status == 401 and self.static_token():
            return (
                f"Motadata refused the pasted access token ({message}). Paste a new one, or "
                "enter client ID, client secret, username and password so the console renews it."
            )
        return message


__all__ = ["MotadataProvider", "MotadataTicketForm", "custom_field_errors"]
