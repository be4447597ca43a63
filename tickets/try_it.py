""" "Try it" for a generic account: one configured request, shown before it is trusted with tickets.

The provider admin picks an operation, a ticket of the account (or a sample ticket), and
either sends the request to the account's base URL or pastes an answer to see how the
configuration reads it. The page shows the exact request (secrets masked by the provider's
redactor) and the parsed result, or the classified error in words. Nothing here changes a
ticket: a sent create really creates a ticket at the provider, which the page says.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms

from console.crypto import CredentialsUnreadable
from console.jsonguard import JSONRefused
from console.jsonguard import loads as guarded_loads
from providers.api_config_form import OPERATIONS
from providers.errors import ProviderConfigurationError, ProviderError
from providers.models import ProviderAccount
from tickets.access import Principal, visible_tickets
from tickets.models import Priority, Status, Ticket

SAMPLE = ""
SEND, PARSE = "send", "parse"
TICKETS_OFFERED = 50
#: The answer's bound, as for every JSON a person hands the console (console/jsonguard.py).
ANSWER_MAX_CHARS = 256 * 1024

#: An error class (the engine's names) in words an admin reads.
ERROR_WORDS = {
    "auth": "The provider refused the credentials.",
    "validation": "The provider refused the request as invalid.",
    "not_found": "The provider does not know the ticket.",
    "rate_limited": "The provider asked to slow down (rate limited).",
    "transient": "A passing failure: the request did not apply; the sync would retry it.",
    "transient_applied": "A failure after which the request may have applied; the sync would hold "
    "the ticket for a person to check.",
    "response": "The answer could not be read as the configuration says.",
    "configuration": "The configuration cannot build this request.",
    "provider": "The provider answered with a failure.",
}


def sample_ticket(account: ProviderAccount) -> Ticket:
    """An unsaved ticket with every field filled, so every placeholder has something to show."""
    return Ticket(
        account=account,
        reference="TC-000000",
        title="Sample ticket from Try it",
        description="Printer on the 3rd floor prints blank pages.",
        requester_email="ann@example.com",
        requester_name="Ann Example",
        priority=Priority.HIGH,
        status=Status.OPEN,
        tags=["sample"],
        extra={},
        remote_id="SAMPLE-1",
        remote_number="1",
        remote_url="",
        revision=1,
    )


class TryItForm(forms.Form):
    operation = forms.ChoiceField(label="Operation")
    ticket = forms.ChoiceField(label="Ticket", required=False)
    mode = forms.ChoiceField(
        label="Answer",
        choices=[
            (PARSE, "Parse this pasted answer (nothing is sent)"),
            (SEND, "Send to the base URL (a create or update really happens at the provider)"),
        ],
        initial=PARSE,
        widget=forms.RadioSelect,
    )
    status = forms.IntegerField(label="HTTP status", min_value=100, max_value=599, initial=200)
    answer = forms.CharField(
        label="Answer body",
        required=False,
        strip=False,
        max_length=ANSWER_MAX_CHARS,
        widget=forms.Textarea(attrs={"rows": 10, "cols": 100, "spellcheck": "false"}),
        help_text="The body as the provider would answer (JSON, or any text).",
    )

    def __init__(self, *args, account: ProviderAccount, user: Principal, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.account = account
        provider_class = account.provider_class
        self.fields["operation"].choices = [
            (operation, operation) for operation in OPERATIONS if provider_class.supports(operation)
        ]
        # Only tickets the admin may see (a restricted account's tickets: members only).
        tickets = visible_tickets(user, Ticket.objects.filter(account=account)).order_by("-created_at")
        self.fields["ticket"].choices = [(SAMPLE, "A sample ticket")] + [
            (str(ticket.pk), f"{ticket.reference}: {ticket.title[:80]}")
            for ticket in tickets.only("pk", "reference", "title")[:TICKETS_OFFERED]
        ]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("mode") == PARSE and not (cleaned.get("answer") or "").strip():
            self.add_error("answer", "Paste the answer to parse, or choose to send the request.")
        return cleaned

    def chosen_ticket(self) -> Ticket:
        pk = self.cleaned_data.get("ticket")
        if pk:
            return Ticket.objects.get(pk=pk, account=self.account)
        return sample_ticket(self.account)


def shown_json(value: Any) -> str:
    """A value as indented JSON when it is JSON-like, else as text."""
    if isinstance(value, str):
        try:
            value = guarded_loads(value)
        except JSONRefused:
            return value
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def run(form: TryItForm) -> dict[str, Any]:
    """The engine's answer for the chosen request, made ready for the page."""
    data = form.cleaned_data
    sample = None
    if data["mode"] == PARSE:
        sample = {"status": data["status"], "text": data["answer"]}
    try:
        provider = form.account.get_provider()
        ticket = form.chosen_ticket()
        outcome = provider.try_operation(data["operation"], ticket, sample_response=sample)
    except ProviderConfigurationError as exc:
        return {"error": {"class": "configuration", "message": getattr(exc, "message", str(exc))}}
    except CredentialsUnreadable:
        return {
            "error": {
                "class": "configuration",
                "message": "The stored credentials cannot be read with the current keys: enter them again.",
            }
        }
    except ProviderError as exc:  # try_operation reports failures itself; this is a safety net
        return {"error": {"class": "response", "message": getattr(exc, "message", str(exc))}}
    return present(outcome)


def present(outcome: dict[str, Any]) -> dict[str, Any]:
    request = outcome.get("request") or {}
    shown: dict[str, Any] = {
        "request": {
            "method": request.get("method", ""),
            "url": request.get("url", ""),
            "headers": request.get("headers") or {},
            "body": shown_json(request.get("body")) if request.get("body") not in (None, "") else "",
        }
        if request
        else None
    }
    error = outcome.get("error")
    if error:
        kind = str(error.get("class") or "")
        shown["error"] = {
            "class": kind,
            "words": ERROR_WORDS.get(kind, "The request failed."),
            "message": str(error.get("message") or ""),
        }
    else:
        shown["result"] = shown_json(outcome.get("result"))
    return shown
