"""The account form: kind-specific, write-only credential fields; maps edited as tables."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from django import forms
from django.template.loader import render_to_string
from django.utils import formats
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_variables

from console.jsonguard import GuardedJSONField, JSONRefused, value_problem
from console.jsonguard import loads as guarded_loads
from providers import api_config_form
from providers.api_config_form import GENERIC
from providers.bounds import ENGINE_SETTINGS
from providers.egress import base_url_problem
from providers.models import ProviderAccount
from providers.registry import PROVIDERS, get_provider_class, provider_class_for
from providers.vocabulary import CONSOLE_PRIORITIES, CONSOLE_STATUSES

CREDENTIALS_LABEL = "credentials"


def credential_field_name(kind: str, key: str) -> str:
    return f"cred__{kind}__{key}"


def clear_field_name(kind: str, key: str) -> str:
    return f"clear__{kind}__{key}"


def is_credential_field(name: str) -> bool:
    return name.startswith(("cred__", "clear__"))


def optional_credentials(kind: str) -> list[str]:
    """Credential keys an account may leave unset (only these get a "clear" checkbox)."""
    return [key for key, field in get_provider_class(kind).credential_fields.items() if not field.required]


def write_only_credential_fields() -> dict[str, forms.Field]:
    """Every provider's credential fields, as password inputs that never render a value, and
    a "clear" checkbox for each optional one (blank already means "keep")."""
    fields: dict[str, forms.Field] = {}
    for kind in PROVIDERS:
        provider_class = get_provider_class(kind)
        for key, field in provider_class.credential_fields.items():
            field = copy.deepcopy(field)
            field.required = False
            field.widget = forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})
            fields[credential_field_name(kind, key)] = field
            if key in optional_credentials(kind):
                fields[clear_field_name(kind, key)] = forms.BooleanField(
                    required=False,
                    label=f"Clear {field.label or key}",
                    help_text="Remove the stored value on save.",
                )
    return fields


# --- maps as tables ---------------------------------------------------------------------------
def vocabulary(kind: str) -> dict[str, list]:
    """What a provider calls things, from its default maps: offered in the tables' lists."""
    provider_class = get_provider_class(kind)
    status_map = provider_class.default_status_map
    remote_statuses = {*status_map.get("outbound", {}).values(), *status_map.get("inbound", {})}
    extra_fields = provider_class.extra_form.base_fields if provider_class.extra_form else {}
    return {
        "status": sorted(remote_statuses, key=str),
        "priority": sorted(set(provider_class.default_priority_map.values()), key=str),
        "settings": sorted({*provider_class.demo_settings, *extra_fields, *ENGINE_SETTINGS}),
    }


@dataclass(frozen=True)
class Table:
    """One key → value table of a JSON object (or of one section of it)."""

    section: str | None  # None: the table is the whole object
    title: str
    key_label: str
    value_label: str
    fixed_keys: tuple[str, ...] = ()  # one row per console value; otherwise free keys
    key_vocabulary: str = ""  # a vocabulary() name offered for free keys
    value_choices: tuple[str, ...] = ()  # a <select> of console values
    value_vocabulary: str = ""  # a vocabulary() name offered for free values
    json_values: bool = False  # values may be numbers, booleans, lists (settings)
    blank_rows: int = 3


STATUS_TABLES = (
    Table(
        "outbound",
        "Console status → provider status (sent)",
        "Console status",
        "Provider value",
        fixed_keys=CONSOLE_STATUSES,
        value_vocabulary="status",
    ),
    Table(
        "inbound",
        "Provider status → console status (read back)",
        "Provider value",
        "Console status",
        key_vocabulary="status",
        value_choices=CONSOLE_STATUSES,
    ),
)
PRIORITY_TABLES = (
    Table(
        None,
        "Console priority → provider priority",
        "Console priority",
        "Provider value",
        fixed_keys=CONSOLE_PRIORITIES,
        value_vocabulary="priority",
    ),
)
SETTINGS_TABLES = (
    Table(
        None,
        "Defaults",
        "Setting",
        "Value (text, or JSON for numbers, true/false, lists)",
        key_vocabulary="settings",
        json_values=True,
    ),
)


def show_value(value: Any, *, json_values: bool) -> str:
    """The text a value is edited as; `read_value` turns it back into the same value."""
    if isinstance(value, str):
        if not json_values:
            return value
        try:
            guarded_loads(value)
        except JSONRefused as exc:
            if exc.syntax:
                return value  # plain text that cannot be mistaken for JSON
        return json.dumps(value)
    return json.dumps(value)


def read_value(text: str, *, json_values: bool, samples: list) -> Any:
    """Raises JSONRefused for JSON beyond the guard's bounds (too deep, NaN, 1e999)."""
    text = text.strip()
    if json_values:
        try:
            return guarded_loads(text)
        except JSONRefused as exc:
            if not exc.syntax:
                raise
            return text
    # A provider that speaks numbers (Knight's priorities 1-4) gets numbers back.
    if samples and all(isinstance(s, int) for s in samples) and text.lstrip("-").isdigit():
        return int(text)
    return text


class MappingTableWidget(forms.Widget):
    """Edits a JSON object as tables of rows; posts back JSON, so forms.JSONField validates it.

    Posts without the table inputs (scripts, older tests) fall back to the raw JSON value.
    """

    #: Most rows one table takes from a post (a forged row count must not loop for ever).
    MAX_ROWS = 500

    def __init__(self, tables: tuple[Table, ...], attrs=None) -> None:
        super().__init__(attrs)
        self.tables = tables
        self.kind = ""
        #: Cells the last post could not take ("key: reason"); the form shows them on the field.
        self.refused: list[str] = []

    def rows_of(self, table: Table, mapping: dict) -> list[dict]:
        rows = [{"key": key, "fixed": True, "value": mapping.get(key)} for key in table.fixed_keys]
        rows += [
            {"key": key, "fixed": False, "value": value}
            for key, value in mapping.items()
            if key not in table.fixed_keys
        ]
        if not table.fixed_keys:
            rows += [{"key": "", "fixed": False, "value": None}] * table.blank_rows
        for row in rows:
            value = row["value"]
            row["text"] = "" if value is None else show_value(value, json_values=table.json_values)
        return rows

    def render(self, name, value, attrs=None, renderer=None):
        try:
            data = guarded_loads(value) if isinstance(value, str) else (value or {})
        except JSONRefused:
            data = {}
        data = data if isinstance(data, dict) else {}
        vocabularies = {kind: vocabulary(kind) for kind in PROVIDERS}
        tables = []
        for table in self.tables:
            section = data.get(table.section) if table.section else data
            prefix = f"{name}__{table.section or 'all'}"
            tables.append(
                {
                    "spec": table,
                    "prefix": prefix,
                    "rows": self.rows_of(table, section if isinstance(section, dict) else {}),
                    "key_lists": {k: v[table.key_vocabulary] for k, v in vocabularies.items()}
                    if table.key_vocabulary
                    else {},
                    "value_lists": {k: v[table.value_vocabulary] for k, v in vocabularies.items()}
                    if table.value_vocabulary
                    else {},
                }
            )
        return render_to_string(
            "admin/providers/widgets/mapping_table.html",
            {
                "name": name,
                "tables": tables,
                "kind": self.kind,
            },
        )

    def value_from_datadict(self, data, files, name):
        if f"{name}__tables" not in data:
            return data.get(name)
        samples = vocabulary(data["kind"]) if data.get("kind") in PROVIDERS else {}
        result: dict[str, Any] = {}
        self.refused = []
        for table in self.tables:
            prefix = f"{name}__{table.section or 'all'}"
            mapping: dict[str, Any] = {}
            try:
                count = min(max(0, int(data.get(f"{prefix}__rows", 0))), self.MAX_ROWS)
            except ValueError:
                count = 0
            for index in range(count):
                key = str(data.get(f"{prefix}__key__{index}", "")).strip()
                text = str(data.get(f"{prefix}__value__{index}", "")).strip()
                if key and text:
                    try:
                        mapping[key] = read_value(
                            text,
                            json_values=table.json_values,
                            samples=samples.get(table.value_vocabulary, []),
                        )
                    except JSONRefused as exc:
                        # Kept as typed, so the re-rendered table shows it with the reason.
                        mapping[key] = text
                        self.refused.append(f"'{key[:60]}': {exc}")
            if table.section:
                if mapping:
                    result[table.section] = mapping
            else:
                result = mapping
        return json.dumps(result)

    def value_omitted_from_data(self, data, files, name):
        return f"{name}__tables" not in data and name not in data


NUMBER_FIELDS = (forms.IntegerField, forms.FloatField, forms.DecimalField)


def shown(value: Any) -> str:
    """A value quoted in a message: short, whatever was typed."""
    text = json.dumps(value, ensure_ascii=False) if value_problem(value) is None else repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


#: Keys that must never be a plain setting: the callback secret is kept encrypted
#: (providers/callback_secret.py). Refused here (form and import), dropped by export.
SECRET_SETTINGS = ("callback_secret",)


def numeric_default_errors(kind: Any, settings: dict) -> list[str]:
    """Defaults of the provider's numeric ticket fields, checked as that field checks what an
    agent types (a default the create form would refuse must not be stored)."""
    if kind not in PROVIDERS or get_provider_class(kind).extra_form is None:
        return []
    form_class = get_provider_class(kind).extra_form
    numeric = {
        key: value
        for key, value in settings.items()
        if isinstance(form_class.base_fields.get(key), NUMBER_FIELDS)
    }
    if not numeric:
        return []
    form = form_class(
        data={key: value if isinstance(value, str) else json.dumps(value) for key, value in numeric.items()}
    )
    form.is_valid()
    return [
        f"'{key}' (default of the ticket field \"{form.fields[key].label or key}\"): {message}"
        for key in numeric
        for message in form.errors.get(key, [])
    ]


def mapping_errors(
    *, settings: Any, status_map: Any, priority_map: Any, kind: Any = None
) -> dict[str, list[str]]:
    """What is wrong with an account's defaults and maps, by field (shared with import_accounts)."""
    errors: dict[str, list[str]] = {}
    for name, value in (("settings", settings), ("status_map", status_map), ("priority_map", priority_map)):
        problem = value_problem(value)
        if problem:  # too deep, NaN, 1e999: nothing more can be said of it
            errors[name] = [problem]
    if errors:
        return errors

    def scalar(value: Any) -> bool:
        return isinstance(value, (str, int)) and not isinstance(value, bool) and value != ""

    if not isinstance(settings, dict):
        errors["settings"] = ["Defaults must be an object of setting → value."]
    else:
        problems = [
            f"'{key}' must be {expected} (got {shown(settings[key])})."
            for key, (valid, expected) in ENGINE_SETTINGS.items()
            if key in settings and not valid(settings[key])
        ]
        # The value is not repeated: it is the secret.
        problems += [
            f"'{key}' is not a setting: the callback secret is kept encrypted and "
            'changed with the "Rotate callback secret" action.'
            for key in SECRET_SETTINGS
            if key in settings
        ]
        problems += numeric_default_errors(kind, settings)
        if problems:
            errors["settings"] = problems
    if not isinstance(status_map, dict):
        errors["status_map"] = ['The status map must be {"outbound": {...}, "inbound": {...}}.']
    else:
        problems = []
        unknown = set(status_map) - {"outbound", "inbound"}
        if unknown:
            problems.append(f"Unknown section(s) {', '.join(sorted(unknown))}: use outbound and inbound.")
        outbound, inbound = status_map.get("outbound", {}), status_map.get("inbound", {})
        if not isinstance(outbound, dict) or not isinstance(inbound, dict):
            problems.append("Each section must be an object of value → value.")
        else:
            problems += [
                f"'{key}' is not a console status." for key in outbound if key not in CONSOLE_STATUSES
            ]
            problems += [
                f"Provider value for '{key}' must be text or a number."
                for key, value in outbound.items()
                if not scalar(value)
            ]
            problems += [
                f"'{value}' (for provider value '{key}') is not a console status."
                for key, value in inbound.items()
                if value not in CONSOLE_STATUSES
            ]
        if problems:
            errors["status_map"] = problems
    if not isinstance(priority_map, dict):
        errors["priority_map"] = ["The priority map must be an object of console priority → value."]
    else:
        problems = [
            f"'{key}' is not a console priority." for key in priority_map if key not in CONSOLE_PRIORITIES
        ]
        problems += [
            f"Provider value for '{key}' must be text or a number."
            for key, value in priority_map.items()
            if not scalar(value)
        ]
        if problems:
            errors["priority_map"] = problems
    return errors


# --- the form ---------------------------------------------------------------------------------
class BaseProviderAccountForm(forms.ModelForm):
    """Credentials are never rendered back: blank means "keep what is stored"."""

    class Meta:
        model = ProviderAccount
        fields = [
            "name",
            "kind",
            "base_url",
            "enabled",
            "rate_limit",
            "rate_burst",
            "timeout",
            "settings",
            "status_map",
            "priority_map",
            "paused_until",
        ]
        widgets = {
            "settings": MappingTableWidget(SETTINGS_TABLES),
            "status_map": MappingTableWidget(STATUS_TABLES),
            "priority_map": MappingTableWidget(PRIORITY_TABLES),
        }
        # Bounded parsing (depth, size, NaN/Infinity): a refusal is a message on the field.
        field_classes = {
            "settings": GuardedJSONField,
            "status_map": GuardedJSONField,
            "priority_map": GuardedJSONField,
        }

    credentials_changed = False
    new_credentials: dict = {}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        kind = (self.data.get("kind") if self.is_bound else None) or self.instance.kind or ""
        for name in ("settings", "status_map", "priority_map"):
            self.fields[name].widget.kind = kind
        for name in ("status_map", "priority_map"):
            self.fields[name].help_text = "Left empty, the provider's defaults are used."
        # Empty means the kind's default (Provider.default_rate_limit/_burst): a new account
        # starts empty, so it gets its vendor's figures unless the admin types others.
        defaults = "; ".join(
            f"{cls.label} {cls.default_rate_limit:g}/s, burst {cls.default_rate_burst}"
            for cls in map(get_provider_class, PROVIDERS)
        )
        for name in ("rate_limit", "rate_burst"):
            self.fields[name].required = False
            if not self.instance.pk and not self.is_bound:
                self.initial[name] = None
        self.fields["rate_burst"].help_text = (
            f"{self.fields['rate_burst'].help_text} Left empty (rate and burst), the provider's "
            f"defaults are used: {defaults}."
        )
        # The model form copies the chosen kind onto the instance before save(): remember
        # the stored one to know whether stored credentials still apply.
        self.stored_kind = self.instance.kind if self.instance.pk else None
        self.fields["api_example"].choices = api_config_form.example_choices()
        # Also when bound: the change log compares what is posted with it.
        self.initial.update(api_config_form.split(self.instance.api_config))
        set_on = self.instance.credentials_updated_at
        if self.instance.pk and set_on:
            for key in self.instance.provider_class.credential_fields:
                field = self.fields[credential_field_name(self.instance.kind, key)]
                field.help_text = (
                    f"Set on {formats.date_format(set_on, 'DATETIME_FORMAT')}. "
                    "Leave blank to keep it. " + str(field.help_text or "")
                )

    @method_decorator(sensitive_variables("stored", "values", "entered"))
    def credentials_after_save(self, kind: str) -> tuple[dict, bool]:
        """The credential set this form would store, and whether it differs from the stored one."""
        provider_class = get_provider_class(kind)
        keeping = self.stored_kind == kind
        stored = self.instance.get_credentials() if keeping and self.instance.credentials else {}
        values = dict(stored)
        for key in provider_class.credential_fields:
            entered = self.cleaned_data.get(credential_field_name(kind, key))
            if entered:
                values[key] = entered
            elif self.cleaned_data.get(clear_field_name(kind, key)):
                values.pop(key, None)
        return values, (values != stored or not keeping)

    def clean_base_url(self) -> str:
        url = self.cleaned_data["base_url"]
        problem = base_url_problem(url)
        if problem:
            raise forms.ValidationError(problem, code="unreachable_host")
        return url

    @method_decorator(sensitive_variables("cleaned", "values"))
    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind")
        if not kind:
            return cleaned
        for name, default in (
            ("rate_limit", get_provider_class(kind).default_rate_limit),
            ("rate_burst", get_provider_class(kind).default_rate_burst),
        ):
            if name not in self.errors and cleaned.get(name) is None:
                cleaned[name] = default
        for key in get_provider_class(kind).credential_fields:
            if cleaned.get(credential_field_name(kind, key)) and cleaned.get(clear_field_name(kind, key)):
                self.add_error(clear_field_name(kind, key), "Enter a new value or clear it, not both.")
        for name in ("settings", "status_map", "priority_map"):
            refused = self.fields[name].widget.refused
            if refused and name in cleaned:
                self.add_error(name, [f"{cell} Enter it again." for cell in refused])
        provider_class = self.configured_provider_class(kind)
        for name, problems in mapping_errors(
            settings=cleaned.get("settings", {}),
            status_map=cleaned.get("status_map", {}),
            priority_map=cleaned.get("priority_map", {}),
            kind=kind,
        ).items():
            if name in cleaned:
                self.add_error(name, problems)
        # Worked out once, before save() changes what is stored; the change log reads it too.
        values, self.credentials_changed = self.credentials_after_save(kind)
        self.new_credentials = values
        for key, message in provider_class.validate_credentials(values).items():
            self.add_error(credential_field_name(kind, key), message)
        return cleaned

    api_config: dict = {}

    def configured_provider_class(self, kind: str):
        """The generic kind's configuration from its sections: refused parts are reported on
        their own section, as typed. Returns the provider class the account will have."""
        provider_class = get_provider_class(kind)
        if kind != GENERIC:
            self.api_config = {}
            return provider_class
        sections = api_config_form.SECTIONS
        texts = {section.field: self.cleaned_data.get(section.field) or "" for section in sections}
        example = self.cleaned_data.get("api_example")
        if example and not any(text.strip() for text in texts.values()):
            # Chosen without the page's script (which fills the sections): the example, as is.
            texts = api_config_form.split(api_config_form.examples()[example])
        parsed, problems = {}, {}
        for field, text in texts.items():
            try:
                parsed[field] = api_config_form.parse_section(text)
            except JSONRefused as exc:
                problems[field] = [str(exc)]
        config, join_problems = api_config_form.join(parsed)
        for field, messages in join_problems.items():
            problems.setdefault(field, []).extend(messages)
        # Every section is checked at once; a section that could not be read keeps only that
        # reason (the check would report it missing).
        unread = set(problems)
        for field, messages in api_config_form.config_problems(config).items():
            if field not in unread:
                problems.setdefault(field, []).extend(messages)
        for field, messages in problems.items():
            self.add_error(field, messages)
        self.api_config = config
        if problems:
            return provider_class
        return provider_class_for(kind, config)

    def save(self, commit: bool = True) -> ProviderAccount:
        account = super().save(commit=False)
        account.api_config = self.api_config if account.kind == GENERIC else {}
        # For the generic kind, the class built from that configuration (its default maps).
        provider_class = account.provider_class
        if self.credentials_changed:
            account.set_credentials(self.new_credentials)
        if not account.status_map:
            account.status_map = provider_class.default_status_map
        if not account.priority_map:
            account.priority_map = provider_class.default_priority_map
        if commit:
            account.save()
        return account


# Declared (not added in __init__) so the admin's fieldsets can name them.
ProviderAccountForm = type(
    "ProviderAccountForm",
    (BaseProviderAccountForm,),
    {**write_only_credential_fields(), **api_config_form.section_fields()},
)


def describe_changes(changed_fields: list[str], labels: dict[str, str], *, credentials: bool) -> list[dict]:
    """An admin change message naming changed fields; credentials only as "credentials"."""
    names = [labels.get(name, name) for name in changed_fields if not is_credential_field(name)]
    if credentials:
        names.append(CREDENTIALS_LABEL)
    return [{"changed": {"fields": names}}] if names else []
