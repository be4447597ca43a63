"""The account form: kind-specific, write-only credential fields."""

from __future__ import annotations

import copy

from django import forms
from django.utils import formats

from providers.models import ProviderAccount
from providers.registry import PROVIDERS, get_provider_class


def credential_field_name(kind: str, key: str) -> str:
    return f"cred__{kind}__{key}"


def write_only_credential_fields() -> dict[str, forms.Field]:
    """Every provider's credential fields, as password inputs that never render a value."""
    fields = {}
    for kind in PROVIDERS:
        for key, field in get_provider_class(kind).credential_fields.items():
            field = copy.deepcopy(field)
            field.required = False
            field.widget = forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})
            fields[credential_field_name(kind, key)] = field
    return fields


class BaseProviderAccountForm(forms.ModelForm):
    """Credentials are never rendered back: blank means "keep what is stored"."""

    class Meta:
        model = ProviderAccount
        fields = [
            "name", "kind", "base_url", "enabled", "rate_limit", "timeout", "settings",
            "status_map", "priority_map", "paused_until",
        ]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        set_on = self.instance.credentials_updated_at
        if self.instance.pk and set_on:
            for key in self.instance.provider_class.credential_fields:
                field = self.fields[credential_field_name(self.instance.kind, key)]
                field.help_text = (
                    f"Set on {formats.date_format(set_on, 'DATETIME_FORMAT')}. "
                    "Leave blank to keep it. " + str(field.help_text or "")
                )

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind")
        if not kind:
            return cleaned
        provider_class = get_provider_class(kind)
        keeping = self.instance.pk and self.instance.kind == kind
        stored = self.instance.get_credentials() if keeping and self.instance.credentials else {}
        entered = {
            key: cleaned.get(credential_field_name(kind, key))
            for key in provider_class.credential_fields
            if cleaned.get(credential_field_name(kind, key))
        }
        for key, message in provider_class.validate_credentials({**stored, **entered}).items():
            self.add_error(credential_field_name(kind, key), message)
        return cleaned

    def save(self, commit: bool = True) -> ProviderAccount:
        account = super().save(commit=False)
        provider_class = get_provider_class(account.kind)
        keeping = "kind" not in self.changed_data and self.instance.pk is not None
        values = account.get_credentials() if keeping and account.credentials else {}
        entered = {
            key: self.cleaned_data.get(credential_field_name(account.kind, key))
            for key in provider_class.credential_fields
        }
        entered = {k: v for k, v in entered.items() if v}
        if entered or not keeping:
            account.set_credentials({**values, **entered})
        if not account.status_map:
            account.status_map = provider_class.default_status_map
        if not account.priority_map:
            account.priority_map = provider_class.default_priority_map
        if commit:
            account.save()
        return account


# Declared (not added in __init__) so the admin's fieldsets can name them.
ProviderAccountForm = type(
    "ProviderAccountForm", (BaseProviderAccountForm,), write_only_credential_fields()
)
