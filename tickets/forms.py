from django import forms

from console.jsonguard import GuardedJSONField
from tickets.models import Ticket
from tickets.services import SYNCED_FIELDS


class TicketForm(forms.ModelForm):
    """The console's own fields plus the provider's extra fields, validated before saving."""

    class Meta:
        model = Ticket
        # The account, then every field whose change reaches the provider (services says which).
        fields = ["account", *SYNCED_FIELDS]
        # Bounded parsing (console/jsonguard.py): deep or non-finite JSON is a field error.
        field_classes = {"tags": GuardedJSONField, "extra": GuardedJSONField}

    def clean(self):
        cleaned = super().clean()
        # On edits the account is read-only (not in the form), so it comes from the instance.
        account = cleaned.get("account") or (self.instance.account if self.instance.account_id else None)
        if account is None:
            return cleaned
        provider_class = account.provider_class
        for field, errors in provider_class.validate_ticket(cleaned).items():
            for error in errors:
                self.add_error(field if field in self.fields else None, error)
        extra_form_class = provider_class.extra_form
        if extra_form_class is not None:
            extra_form = extra_form_class(data=cleaned.get("extra") or {})
            if extra_form.is_valid():
                cleaned["extra"] = {
                    k: v for k, v in extra_form.cleaned_data.items() if v not in ("", None, {}, [])
                }
            else:
                for field, errors in extra_form.errors.items():
                    for error in errors:
                        label = "" if field == "__all__" else f"{field}: "
                        self.add_error("extra", f"{label}{error}")
        return cleaned
