"""Forms of the staff UI: the ticket form with the chosen provider's own fields as real inputs,
the list filters and the small action forms. Saving goes through tickets/services.py."""

from __future__ import annotations

import json
from typing import Any

from crispy_forms.helper import FormHelper
from django import forms
from django.conf import settings
from django.db.models import QuerySet

from providers.models import ProviderAccount
from tickets.access import usable_accounts, visible_accounts
from tickets.forms import TicketForm
from tickets.models import Priority, Status, SyncState
from tickets.search import search_tickets

# Values that mean "left blank" in a provider's extra fields (kept out of Ticket.extra).
BLANK_VALUES = ("", None, {}, [])


def crispy_helper() -> FormHelper:
    """Fields only: the templates write the <form> tag, CSRF token and buttons themselves."""
    helper = FormHelper()
    helper.form_tag = False
    helper.disable_csrf = True
    return helper


class AccountChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: ProviderAccount) -> str:
        return f"{obj.name} ({obj.provider_class.label})"


class TagsField(forms.CharField):
    """Tags typed as comma-separated text, stored as a list."""

    def prepare_value(self, value: Any) -> Any:
        return ", ".join(str(v) for v in value) if isinstance(value, list | tuple) else value

    def to_python(self, value: Any) -> list[str]:
        text = super().to_python(value) or ""
        return [part.strip() for part in text.split(",") if part.strip()]


def field_initial(field: forms.Field, value: Any) -> Any:
    """A stored value (account default or Ticket.extra) as the field's widget expects it."""
    if isinstance(field, forms.JSONField):
        return value
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return value


def provider_form_for(
    account: ProviderAccount | None, *, data=None, stored: dict[str, Any] | None = None
) -> forms.Form | None:
    """The account's provider fields (prefixed by kind, so they never clash with the ticket's).

    `stored` pre-fills them (a ticket's extra); without it the account's defaults do.
    """
    if account is None or account.provider_class.extra_form is None:
        return None
    form_class = account.provider_class.extra_form
    values = (account.settings or {}) if stored is None else stored
    initial = {
        name: field_initial(field, values[name])
        for name, field in form_class.base_fields.items()
        if values.get(name) not in BLANK_VALUES
    }
    form = form_class(data=data, initial=initial, prefix=account.kind)
    for field in form.fields.values():
        if isinstance(field.widget, forms.Textarea):
            field.widget.attrs["rows"] = 3
        if isinstance(field, forms.NullBooleanField):
            # Blank means "the account's default" for provider flags, not "unknown".
            field.widget.choices = [("unknown", "Account default"), ("true", "Yes"), ("false", "No")]
    form.helper = crispy_helper()
    return form


def provider_values(provider_form: forms.Form | None) -> dict[str, Any]:
    """The provider fields an agent filled in, as stored in Ticket.extra."""
    if provider_form is None:
        return {}
    return {k: v for k, v in provider_form.cleaned_data.items() if v not in BLANK_VALUES}


class TicketFieldsForm(TicketForm):
    """The console's own ticket fields; the provider's fields travel in a second form
    (`self.provider_form`) so each error shows on the input it concerns."""

    tags = TagsField(required=False, help_text="Comma-separated, e.g. vpn, outage.")

    class Meta(TicketForm.Meta):
        fields = [
            "title",
            "description",
            "requester_email",
            "requester_name",
            "priority",
            "impact",
            "status",
            "due_at",
            "tags",
        ]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 5}),
            "due_at": forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        }
        labels = {"due_at": "Due"}

    def __init__(self, *args: Any, account: ProviderAccount | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.account = account
        self.helper = crispy_helper()

    def clean(self) -> dict[str, Any]:
        # TicketForm.clean checks a JSON `extra` field this form does not have; the provider's
        # own form validates those fields, so only the provider's ticket rules run here.
        cleaned = forms.ModelForm.clean(self)
        if self.account is not None:
            for field, errors in self.account.provider_class.validate_ticket(cleaned).items():
                for error in errors:
                    self.add_error(field if field in self.fields else None, error)
        return cleaned


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one input (Django's documented pattern)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list:
        single = super().clean
        if isinstance(data, (list, tuple)):
            return [single(item, initial) for item in data]
        return [single(data, initial)] if data else []


class TicketCreateForm(TicketFieldsForm):
    account = AccountChoiceField(queryset=ProviderAccount.objects.none(), empty_label="Choose an account…")

    class Meta(TicketFieldsForm.Meta):
        fields = ["account", *TicketFieldsForm.Meta.fields]

    def __init__(self, *args: Any, user, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = usable_accounts(user)
        self.fields[
            "account"
        ].help_text = "The service the ticket is created in; its own fields appear below."
        self.order_fields(["account"])

    def add_attachments_field(self, account: ProviderAccount | None) -> None:
        """A files input, for providers whose create carries files (Keliweb, Motadata)."""
        if account is None or not account.provider_class.accepts_attachments:
            return
        limit_mb = settings.ATTACHMENT_MAX_BYTES / (1024 * 1024)
        self.fields["attachments"] = MultipleFileField(
            required=False,
            label="Attachments",
            help_text=f"Sent with the create; up to {limit_mb:g} MB each.",
        )

    def clean_attachments(self) -> list:
        files = self.cleaned_data.get("attachments") or []
        too_large = [f.name for f in files if f.size > settings.ATTACHMENT_MAX_BYTES]
        if too_large:
            limit_mb = settings.ATTACHMENT_MAX_BYTES / (1024 * 1024)
            raise forms.ValidationError(f"Larger than the {limit_mb:g} MB limit: {', '.join(too_large)}.")
        return files

    def clean(self) -> dict[str, Any]:
        self.account = self.cleaned_data.get("account")
        return super().clean()


class TicketFilterForm(forms.Form):
    q = forms.CharField(
        required=False,
        label="Search",
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Reference, title, remote number, email"}
        ),
    )
    account = forms.ModelChoiceField(
        queryset=ProviderAccount.objects.none(), required=False, empty_label="All accounts"
    )
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *Status.choices])
    priority = forms.ChoiceField(required=False, choices=[("", "Any priority"), *Priority.choices])
    sync_state = forms.ChoiceField(
        required=False, label="Sync", choices=[("", "Any sync state"), *SyncState.choices]
    )
    mine = forms.BooleanField(
        required=False,
        label="Only tickets I created",
        widget=forms.CheckboxInput(attrs={"class": "form-check-input"}),
    )

    def __init__(self, *args: Any, user, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = visible_accounts(user)

    def filter(self, tickets: QuerySet, user) -> QuerySet:
        if not self.is_valid():
            return tickets
        data = self.cleaned_data
        if data["q"]:
            tickets = search_tickets(tickets, query=data["q"].strip())
        if data["account"]:
            tickets = tickets.filter(account=data["account"])
        for name in ("status", "priority", "sync_state"):
            if data[name]:
                tickets = tickets.filter(**{name: data[name]})
        if data["mine"]:
            tickets = tickets.filter(created_by=user)
        return tickets


class StatusForm(forms.Form):
    status = forms.ChoiceField(choices=Status.choices, label="New status")


class ReplyForm(forms.Form):
    body = forms.CharField(label="Reply", widget=forms.Textarea(attrs={"rows": 3}), max_length=20_000)


class LinkRemoteForm(forms.Form):
    remote_id = forms.CharField(
        label="Remote id",
        max_length=100,
        help_text="The id of the ticket you found in the provider, so the console does not create another.",
    )
    remote_number = forms.CharField(
        label="Remote number",
        max_length=100,
        required=False,
        help_text="The number people see, if it differs from the id.",
    )
    remote_url = forms.URLField(label="Remote link", max_length=500, required=False, assume_scheme="https")
