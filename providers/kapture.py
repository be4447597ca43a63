"""Kapture CX (docs/providers.md §4; seed 003).

Everything is POST + JSON with `Authorization: Basic <token>`, where the token is issued by
Kapture (not built from a user and password). Add and update take a JSON *array*; search
takes a JSON *object*. Failures may come back as HTTP 200 with `"status": "failed"`.

Assumed (no source states it, 2026-11): the update answer is any JSON object without
`"status": "failed"`; search answers carry the id in `task_details.ticket_id` (or `id`).
No rate limit is documented for this shared cloud service: new accounts get a cautious
5 requests/s with a burst of 10; a 429 is honoured if it comes.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms

from console.jsonguard import GuardedJSONField
from providers.base import CREATE, FETCH, REPLY, TEST, UPDATE, Provider, RemoteRef, RemoteState, lenient_get
from providers.errors import (
    ProviderAuthError,
    ProviderNotFoundError,
    ProviderResponseError,
    ProviderValidationError,
)
from providers.http import ApiRequest, ApiResponse

KAPTURE_DATETIME = "%Y-%m-%d %H:%M:%S"
CALLBACK_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


class KaptureTicketForm(forms.Form):
    """Kapture's own ticket fields, kept in Ticket.extra."""

    extra_keys = GuardedJSONField(
        required=False,
        label="Extra keys",
        help_text='Extra body keys your Kapture account maps, e.g. {"order_id": "A-17"}.',
    )
    queue = forms.CharField(required=False, max_length=100, help_text="Queue key for updates.")
    disposition = forms.CharField(required=False, max_length=100)
    callback_time = forms.CharField(
        required=False, help_text="When Kapture should call back: yyyy-MM-dd hh:mm:ss."
    )

    def clean_extra_keys(self) -> dict:
        value = self.cleaned_data.get("extra_keys") or {}
        if not isinstance(value, dict):
            raise forms.ValidationError("Extra keys must be a JSON object of key: value pairs.")
        reserved = set(value) & {"title", "ticket_details", "due_date", "email_id"}
        if reserved:
            raise forms.ValidationError(
                f"{', '.join(sorted(reserved))} come from the ticket's own fields; remove them here."
            )
        return value

    def clean_callback_time(self) -> str:
        value = (self.cleaned_data.get("callback_time") or "").strip()
        if value and not CALLBACK_TIME.match(value):
            raise forms.ValidationError("Use the format yyyy-MM-dd hh:mm:ss, e.g. 2026-11-24 09:30:00.")
        return value


class KaptureProvider(Provider):
    default_rate_limit = 5.0
    default_rate_burst = 10
    kind = "kapture"
    label = "Kapture CX"
    capabilities = frozenset({CREATE, UPDATE, FETCH, REPLY, TEST})
    # Its update takes a sub-status, queue, disposition and callback time, nothing else.
    updatable_fields = frozenset({"status", "extra"})
    test_probe_is_missing_ticket = True
    credential_fields = {
        "token": forms.CharField(
            label="API token",
            help_text="The token Kapture issued for Basic auth (sent as 'Basic <token>').",
        ),
    }
    extra_form = KaptureTicketForm
    # Sub-status keys are configured per Kapture account; these are the ones seen in public
    # client code. Admins edit them per account.
    default_status_map = {
        "outbound": {
            "new": "OP",
            "open": "OP",
            "in_progress": "OP",
            "on_hold": "IN",
            "pending": "IN",
            "resolved": "RS",
            "closed": "CL",
            "cancelled": "CL",
        },
        "inbound": {
            "OP": "open",
            "US": "new",
            "IN": "pending",
            "P": "pending",
            "RS": "resolved",
            "CL": "closed",
            "C": "closed",
            "CRS": "open",
        },
    }
    default_priority_map = {}
    fetch_batch_size = 50

    CREATE_PATH = "/add-ticket-from-other-source.html/v.2.0"
    UPDATE_PATH = "/update-ticket-from-other-source.html/v.2.0"
    SEARCH_PATH = "/search-ticket-by-ticket-id.html/v.2.0"

    def authorize(self, request: ApiRequest) -> None:
        request.headers["Authorization"] = f"Basic {self.credential('token')}"

    # --- create ------------------------------------------------------------------------
    def build_create(self, ticket) -> ApiRequest:
        extra = ticket.extra or {}
        item: dict[str, Any] = {
            **(self.setting("extra_keys") or {}),
            **(extra.get("extra_keys") or {}),
            "title": ticket.title,
            "ticket_details": self.description_with_marker(ticket),
            "due_date": self.format_datetime(ticket.due_at, KAPTURE_DATETIME),
            "email_id": ticket.requester_email or "",
        }
        return ApiRequest("POST", self.CREATE_PATH, json=[item])

    def parse_create(self, data: Any, ticket) -> RemoteRef:
        ticket_id = lenient_get(data, "ticket_id", "ticket.ticketId", "Ticket Id")
        if not ticket_id:
            raise ProviderResponseError("Kapture answered success without a ticket_id.")
        url = lenient_get(data, "ticket_url") or ""
        if not url and lenient_get(data, "ticket.ticketURL"):
            url = self.account.base_url.rstrip("/") + data["ticket"]["ticketURL"]
        status = lenient_get(data, "ticket.substatus", "ticket.status") or ""
        return RemoteRef(
            remote_id=str(ticket_id),
            remote_number=str(lenient_get(data, "ticket.id") or ticket_id),
            remote_url=url,
            remote_status=str(status),
        )

    # --- update and reply (a reply is an update carrying a comment) ----------------------
    def build_update(self, ticket, comment: str = "") -> ApiRequest:
        extra = ticket.extra or {}
        item: dict[str, Any] = {
            "ticket_id": ticket.remote_id,
            "sub_status": self.remote_status_for(ticket.status),
        }
        for key in ("queue", "disposition", "callback_time"):
            if extra.get(key):
                item[key] = extra[key]
        if comment:
            item["comment"] = comment
        return ApiRequest("POST", self.UPDATE_PATH, json=[item])

    def build_reply(self, ticket, text: str) -> ApiRequest:
        return self.build_update(ticket, comment=text)

    # --- fetch (batched: ticket_ids comma-separated in an object body) --------------------
    def build_fetch(self, tickets) -> ApiRequest:
        return ApiRequest(
            "POST", self.SEARCH_PATH, json={"ticket_ids": ",".join(t.remote_id for t in tickets)}
        )

    def parse_fetch(self, data: Any, tickets) -> list[RemoteState]:
        if not isinstance(data, list):
            raise ProviderResponseError("Kapture's search answer is not a list.")
        states = []
        for index, entry in enumerate(data):
            details = (entry or {}).get("task_details") or {}
            remote_id = lenient_get(details, "ticket_id", "ticketId", "id")
            if remote_id is None and len(data) == len(tickets):
                remote_id = tickets[index].remote_id  # answers come in request order
            if remote_id is None:
                continue
            status = str(lenient_get(details, "substatus", "status") or "")
            states.append(RemoteState(str(remote_id), status, fields=details))
        return states

    def ref_from_state(self, state: RemoteState) -> RemoteRef:
        number = lenient_get(state.fields, "id")
        return RemoteRef(
            remote_id=state.remote_id, remote_number=str(number or ""), remote_status=state.remote_status
        )

    # --- test ----------------------------------------------------------------------------
    def build_test(self) -> ApiRequest:
        # Kapture has no ping: search for an id that cannot exist. "No Data found" proves the
        # token was accepted; "Invalid Auth Key" proves it was not.
        return ApiRequest("POST", self.SEARCH_PATH, json={"ticket_ids": "0"})

    def parse_test(self, data: Any) -> str:
        return "Connected: Kapture accepted the token."

    # --- errors --------------------------------------------------------------------------
    def check_body(self, data: Any) -> None:
        if not (isinstance(data, dict) and str(data.get("status", "")).lower() == "failed"):
            return
        message = str(data.get("message") or "Kapture reported a failure without a message.")
        lowered = message.lower()
        if "auth" in lowered:
            raise ProviderAuthError(message)
        if "no data found" in lowered:
            raise ProviderNotFoundError(message)
        raise ProviderValidationError(message, field_errors=self.field_errors(data, None))

    def field_errors(self, data: Any, response: ApiResponse | None) -> dict[str, list[str]]:
        """Kapture names no fields; a message about the title is put on it."""
        message = str(data.get("message") or "") if isinstance(data, dict) else ""
        return {"title": [message]} if "title" in message.lower() else {}
