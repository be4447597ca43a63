"""The generic kind's API configuration, edited in the account form as one JSON text per section.

`ProviderAccount.api_config` is one JSON object (docs/generic-provider.md). An admin edits it
in parts — authentication and headers, one request per operation, the error rules — so a
mistake is shown on the part it is in and the rest of what was typed stays as typed. The
parts are joined back into the object `providers.generic.schema.validate_config` checks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from django import forms
from django.utils.html import format_html, json_script

from console.jsonguard import JSONRefused
from console.jsonguard import loads as guarded_loads
from providers.generic import worked
from providers.generic.schema import validate_config

GENERIC = "generic"
OPERATIONS = ("create", "update", "fetch", "reply", "test")


@dataclass(frozen=True)
class Section:
    field: str  # the form field's name
    title: str  # the fieldset's title
    #: validate_config's section names whose messages are shown on this field.
    reports: tuple[str, ...]
    operation: str = ""  # the operation this field holds, if any
    help_text: str = ""
    label: str = ""  # the field's own label (the fieldset already shows the title)


GENERAL = Section(
    "api_general",
    "API: authentication and headers",
    ("general", "auth", "headers"),
    help_text='A JSON object: "label", "description", "auth", "headers", "expects_json", '
    '"create_is_idempotent", "updatable_fields", "status_map", "priority_map", "error_message". '
    "Secrets are never typed here: the auth templates name them as {{ secrets.token }} and they "
    "are entered in the credentials above. A whole configuration pasted here is split into the "
    "sections below.",
    label="Authentication, headers and defaults",
)
ERRORS = Section(
    "api_errors",
    "API: error rules",
    ("errors",),
    help_text="A JSON list of rules, the first that matches decides: "
    '[{"when": {"status": [200], "path": "status", "equals": "failed"}, "then": "validation", '
    '"message": ["message"]}]. Left empty, failures are classified by their HTTP status.',
    label="Error rules",
)
SECTIONS: tuple[Section, ...] = (
    GENERAL,
    *(
        Section(
            f"api_{operation}",
            f"API: {operation}",
            (operation,),
            operation=operation,
            label=f"{operation.capitalize()} request",
            help_text=(
                f"A JSON object describing the {operation} request (method, path, query, headers, "
                "body_type, body, response). Left empty, the account cannot " + operation + "."
                if operation != "create"
                else "A JSON object describing the create request (method, path, query, headers, "
                "body_type, body, response). Required."
            ),
        )
        for operation in OPERATIONS
    ),
    ERRORS,
)
FIELD_OF_SECTION = {name: section.field for section in SECTIONS for name in section.reports}


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def split(config: dict | None) -> dict[str, str]:
    """The text of each section field for a stored configuration ("" for an absent part)."""
    config = dict(config or {})
    operations = config.pop("operations", None)
    operations = operations if isinstance(operations, dict) else {}
    errors = config.pop("errors", None)
    texts = {GENERAL.field: pretty(config) if config else ""}
    for section in SECTIONS:
        if section.operation:
            value = operations.get(section.operation)
            texts[section.field] = "" if value is None else pretty(value)
    texts[ERRORS.field] = "" if errors is None else pretty(errors)
    return texts


def parse_section(text: str) -> Any:
    """The JSON of one section; None when left empty. Raises JSONRefused (bounded parse)."""
    text = (text or "").strip()
    return guarded_loads(text) if text else None


def join(values: dict[str, Any]) -> tuple[dict, dict[str, list[str]]]:
    """The configuration from the parsed sections, and problems by field name.

    A whole configuration pasted into the first section is taken apart: its operations and
    rules count as typed into their own sections, unless those hold something else.
    """
    problems: dict[str, list[str]] = {}
    general = values.get(GENERAL.field)
    if general is None:
        general = {}
    if not isinstance(general, dict):
        problems[GENERAL.field] = ['Enter a JSON object, e.g. {"auth": {"scheme": "bearer"}}.']
        general = {}
    config = dict(general)
    pasted_operations = config.pop("operations", None)
    if pasted_operations is not None and not isinstance(pasted_operations, dict):
        problems.setdefault(GENERAL.field, []).append(
            '"operations" must be an object of operation name → request.'
        )
        pasted_operations = None
    operations: dict[str, Any] = {}
    for name, request in (pasted_operations or {}).items():
        if name not in OPERATIONS:
            problems.setdefault(GENERAL.field, []).append(
                f"'{name}' is not an operation; the operations are {', '.join(OPERATIONS)}."
            )
        else:
            operations[name] = request
    for section in SECTIONS:
        if not section.operation:
            continue
        value = values.get(section.field)
        if value is None:
            continue
        if section.operation in operations and operations[section.operation] != value:
            problems.setdefault(section.field, []).append(
                f"The {section.operation} request is given twice: here and in the configuration "
                f"pasted under “{GENERAL.title}”. Keep one."
            )
            continue
        if not isinstance(value, dict):
            problems.setdefault(section.field, []).append(
                "Enter a JSON object describing the request, e.g. "
                f'{{"method": "POST", "path": "/{section.operation}"}}.'
            )
            continue
        operations[section.operation] = value
    if operations:
        config["operations"] = operations
    rules = values.get(ERRORS.field)
    if rules is not None:
        if "errors" in config and config["errors"] != rules:
            problems.setdefault(ERRORS.field, []).append(
                f"The error rules are given twice: here and in the configuration pasted under "
                f"“{GENERAL.title}”. Keep one."
            )
        elif not isinstance(rules, list):
            problems.setdefault(ERRORS.field, []).append("Enter a JSON list of rules ([...]).")
        else:
            config["errors"] = rules
    return config, problems


def config_problems(config: dict) -> dict[str, list[str]]:
    """validate_config's messages, by the form field each belongs on."""
    by_field: dict[str, list[str]] = {}
    for section, messages in validate_config(config).items():
        field = FIELD_OF_SECTION.get(section, GENERAL.field)
        if field == GENERAL.field and section in ("auth", "headers"):
            messages = [f"{section}: {message}" for message in messages]
        by_field.setdefault(field, []).extend(messages)
    return by_field


# --- examples ---------------------------------------------------------------------------------
@cache
def examples() -> dict[str, dict]:
    """The worked configurations shipped with the generic provider, by name (kapture, ...)."""
    return {name: worked.load_example(name) for name in worked.example_names()}


def example_choices() -> list[tuple[str, str]]:
    return [("", "—")] + [
        (name, str(config.get("label") or name) if isinstance(config, dict) else name)
        for name, config in examples().items()
    ]


class ExampleSelect(forms.Select):
    """The example chooser, with each example's section texts beside it for the page's script."""

    def render(self, name, value, attrs=None, renderer=None):
        select = super().render(name, value, attrs, renderer)
        texts = {name_: split(config) for name_, config in examples().items()}
        return format_html("{}{}", select, json_script(texts, "api-examples"))


class ApiSectionField(forms.CharField):
    """One section's JSON text. Kept as typed (so nothing is lost when the form is refused);
    parsed, bounded, by the form. Unchanged when the JSON is the same, however it is laid out."""

    def __init__(self, section: Section) -> None:
        super().__init__(
            required=False,
            strip=False,
            label=section.label or section.title,
            help_text=section.help_text,
            widget=forms.Textarea(
                attrs={"rows": 12, "cols": 100, "spellcheck": "false", "class": "vLargeTextField api-json"}
            ),
        )

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return parse_section(initial or "") != parse_section(data or "")
        except JSONRefused:
            return True


def section_fields() -> dict[str, forms.Field]:
    fields: dict[str, forms.Field] = {
        "api_example": forms.ChoiceField(
            required=False,
            label="Start from an example",
            help_text="Fills the sections below with a worked configuration; review it, then save. "
            "On a page without scripts, an example chosen with every section empty is used on save.",
            widget=ExampleSelect(),
        )
    }
    fields.update({section.field: ApiSectionField(section) for section in SECTIONS})
    return fields
