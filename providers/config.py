"""Provider accounts as code: export to, and import from, a JSON or YAML document.

    accounts:
      - name: Kapture EU
        kind: kapture
        base_url: https://acme.kapturecrm.com
        enabled: true
        rate_limit: 5.0
        rate_burst: 10
        timeout: 15.0
        settings: {}
        status_map: {outbound: {...}, inbound: {...}}
        priority_map: {}
        api_config: {...}          # the generic kind only (docs/generic-provider.md)
        credentials:
          token: {env: KAPTURE_EU_TOKEN}

Secrets never appear in the document: each credential names the environment variable that
holds it, and the callback secret is not written at all (a new Knight account with a
callback_base_url gets its own when imported). Import is idempotent by account name (create,
update or leave unchanged), checks everything before it writes anything, and writes in one
transaction with an admin LogEntry per created or changed account.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.views.decorators.debug import sensitive_variables

from console.crypto import CredentialsUnreadable
from console.jsonguard import MAX_DEPTH, JSONRefused, nesting_depth, value_problem
from console.jsonguard import loads as guarded_loads
from providers.api_config_form import GENERIC
from providers.bounds import rate_burst_problem, rate_limit_problem, timeout_problem
from providers.egress import base_url_problem
from providers.forms import CREDENTIALS_LABEL, SECRET_SETTINGS, mapping_errors, shown
from providers.generic.schema import validate_config
from providers.models import ProviderAccount
from providers.registry import PROVIDERS, get_provider_class, provider_class_for

PLAIN_FIELDS = (
    "kind",
    "base_url",
    "enabled",
    "rate_limit",
    "rate_burst",
    "timeout",
    "settings",
    "status_map",
    "priority_map",
)
#: The generic kind's configuration: written and read for that kind only (never a secret).
API_CONFIG = "api_config"
ALLOWED_KEYS = {"name", *PLAIN_FIELDS, API_CONFIG, "credentials"}
#: The user import_accounts' LogEntries name when no --user is given.
SYSTEM_USERNAME = "config-import"


class ConfigError(Exception):
    """The document cannot be applied; `problems` lists every reason, nothing was written."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def env_name(account_name: str, key: str) -> str:
    """The environment variable suggested for a credential, e.g. KAPTURE_EU_TOKEN."""
    return re.sub(r"[^A-Z0-9]+", "_", f"{account_name}_{key}".upper()).strip("_")


# --- export ------------------------------------------------------------------------------------
def stored_credential_keys(account: ProviderAccount) -> list[str]:
    """The credential keys the account has a value for (all its kind's keys if unreadable)."""
    declared = list(account.provider_class.credential_fields)
    try:
        stored = account.get_credentials()
    except CredentialsUnreadable:
        return declared
    return [key for key in declared if stored.get(key)]


def export_accounts() -> dict[str, Any]:
    accounts = []
    for account in ProviderAccount.objects.order_by("name"):
        entry: dict[str, Any] = {"name": account.name}
        entry.update({name: getattr(account, name) for name in PLAIN_FIELDS})
        # Never a setting since the callback secret moved to its own field; dropped anyway in
        # case one was written by hand, since the document may be committed.
        entry["settings"] = {k: v for k, v in (account.settings or {}).items() if k not in SECRET_SETTINGS}
        if account.kind == GENERIC:
            entry[API_CONFIG] = account.api_config
        entry["credentials"] = {
            key: {"env": env_name(account.name, key)} for key in stored_credential_keys(account)
        }
        accounts.append(entry)
    return {"accounts": accounts}


def dump(document: dict[str, Any], fmt: str) -> str:
    if fmt == "yaml":
        return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


# --- import ------------------------------------------------------------------------------------
#: Bounds of an accounts document: far above any real one, far below what hurts.
DOCUMENT_MAX_CHARS = 5 * 1024 * 1024


def parse(text: str | bytes, *, filename: str = "") -> Any:
    """JSON or YAML, by the file's extension, else by its content; bounded like every JSON
    input (console/jsonguard.py): size, nesting, NaN/Infinity."""
    lowered = filename.lower()
    label = filename or "The document"
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:  # its cause holds the document, credentials too: dropped
            raise ConfigError(
                [f"{label} is not UTF-8 text (byte {exc.start} cannot be read); save it as UTF-8."]
            ) from None
    if len(text) > DOCUMENT_MAX_CHARS:
        raise ConfigError(
            [f"{label} is too large ({len(text):,} characters; at most {DOCUMENT_MAX_CHARS:,})."]
        )
    if nesting_depth(text) > MAX_DEPTH:  # flow-style YAML nests with the same brackets
        raise ConfigError([f"{label} nests deeper than {MAX_DEPTH} levels."])
    try:
        if lowered.endswith(".json"):
            document = guarded_loads(text, max_chars=DOCUMENT_MAX_CHARS)
        elif lowered.endswith((".yaml", ".yml")):
            document = yaml.safe_load(text)
        else:
            try:
                document = guarded_loads(text, max_chars=DOCUMENT_MAX_CHARS)
            except JSONRefused as exc:
                if not exc.syntax:
                    raise
                document = yaml.safe_load(text)
    # The parsers' exceptions hold the document (credentials too): their causes are dropped.
    except JSONRefused as exc:
        raise ConfigError([f"{label} cannot be used: {exc}"]) from None
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError([f"{label} is not valid JSON or YAML: {exc}"]) from None
    except RecursionError as exc:  # block-style YAML nested by indentation alone
        raise ConfigError([f"{label} nests too deep."]) from exc
    problem = value_problem(document)
    if problem:  # YAML's .nan and .inf, or indentation nesting past the bound
        raise ConfigError([f"{label} cannot be used: {problem}"])
    return document


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: dict[str, list[str]] = field(default_factory=dict)  # name -> changed fields
    unchanged: list[str] = field(default_factory=list)


@dataclass
class Planned:
    """One account entry, checked: what to write."""

    name: str
    values: dict[str, Any]
    credentials: dict[str, str] | None  # None: keep what is stored


def check_entry(entry: Any, position: int, environ: Mapping[str, str]) -> tuple[Planned | None, list[str]]:
    where = f"accounts[{position}]"
    if not isinstance(entry, dict):
        return None, [f"{where}: an account must be an object."]
    name = entry.get("name")
    if isinstance(name, str) and name.strip():
        where = f"account '{name}'"
    else:
        return None, [f"{where}: 'name' is required."]
    problems = [f"{where}: unknown key '{key}'." for key in sorted(set(entry) - ALLOWED_KEYS)]
    kind = entry.get("kind")
    if kind not in PROVIDERS:
        problems.append(f"{where}: kind '{kind}' is not one of {', '.join(PROVIDERS)}.")
        return None, problems
    values = {key: entry[key] for key in PLAIN_FIELDS if key in entry}
    if "base_url" not in values:
        problems.append(f"{where}: 'base_url' is required.")
    else:
        try:
            URLValidator(schemes=["http", "https"])(values["base_url"])
        except (ValidationError, TypeError):
            problems.append(f"{where}: base_url '{values['base_url']}' is not an http(s) URL.")
        else:
            if problem := base_url_problem(values["base_url"]):
                problems.append(f"{where}: base_url: {problem}")
    if "enabled" in values and not isinstance(values["enabled"], bool):
        problems.append(f"{where}: enabled must be true or false.")
    for number, problem_of in (
        ("rate_limit", rate_limit_problem),
        ("rate_burst", rate_burst_problem),
        ("timeout", timeout_problem),
    ):
        if number in values and problem_of(values[number]):
            problems.append(f"{where}: {number}: {problem_of(values[number])} (got {shown(values[number])})")
    provider_class, config_problems = configured_class(kind, entry)
    problems += [f"{where}: {message}" for message in config_problems]
    if kind == GENERIC:
        values[API_CONFIG] = entry.get(API_CONFIG)
    for name_, messages in mapping_errors(
        settings=values.get("settings", {}),
        status_map=values.get("status_map", {}),
        priority_map=values.get("priority_map", {}),
        kind=kind,
    ).items():
        problems += [f"{where}: {name_}: {message}" for message in messages]
    credentials = None
    if "credentials" in entry:
        credentials, credential_problems = resolve_credentials(entry["credentials"], provider_class, environ)
        problems += [f"{where}: {message}" for message in credential_problems]
    return Planned(name.strip(), values, credentials), problems


def configured_class(kind: str, entry: dict) -> tuple[type, list[str]]:
    """The provider class an entry's account will have, and what is wrong with its
    api_config (checked as the account form checks it)."""
    provider_class = get_provider_class(kind)
    config = entry.get(API_CONFIG)
    if kind != GENERIC:
        if config:
            return provider_class, [
                f"{API_CONFIG}: only accounts of kind {GENERIC} have an API configuration."
            ]
        return provider_class, []
    if not isinstance(config, dict) or not config:
        return provider_class, [
            f"{API_CONFIG}: an account of kind {GENERIC} needs its API configuration (an object)."
        ]
    if problem := value_problem(config):
        return provider_class, [f"{API_CONFIG}: {problem}"]
    problems = [
        f"{API_CONFIG}: {section}: {message}"
        for section, messages in validate_config(config).items()
        for message in messages
    ]
    if problems:
        return provider_class, problems
    return provider_class_for(kind, config), []


@sensitive_variables("values", "environ")
def resolve_credentials(
    given: Any, provider_class, environ: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """Credential values from the environment variables the document names."""
    if not isinstance(given, dict):
        return {}, ["credentials must be an object of key: {env: VARIABLE}."]
    values, problems = {}, []
    for key, reference in given.items():
        if key not in provider_class.credential_fields:
            known = ", ".join(provider_class.credential_fields)
            problems.append(f"{provider_class.label} has no credential '{key}' (it takes: {known}).")
            continue
        variable = reference.get("env") if isinstance(reference, dict) else None
        if not isinstance(variable, str) or set(reference) != {"env"}:
            problems.append(f"credential '{key}' must be given as {{env: VARIABLE}}, never as a value.")
        elif not environ.get(variable):
            problems.append(f"credential '{key}': the environment variable {variable} is not set.")
        else:
            values[key] = environ[variable]
    if not problems:
        problems += [
            f"credential '{key}': {message}"
            for key, message in provider_class.validate_credentials(values).items()
        ]
    return values, problems


def check(document: Any, environ: Mapping[str, str]) -> list[Planned]:
    if not isinstance(document, dict) or not isinstance(document.get("accounts"), list):
        raise ConfigError(["The document must have a list under 'accounts'."])
    planned, problems, seen = [], [], set()
    for position, entry in enumerate(document["accounts"]):
        item, entry_problems = check_entry(entry, position, environ)
        problems += entry_problems
        if item:
            if item.name in seen:
                problems.append(f"account '{item.name}' appears more than once.")
            seen.add(item.name)
            planned.append(item)
    existing = {a.name: a for a in ProviderAccount.objects.filter(name__in=seen)}
    for item in planned:
        account = existing.get(item.name)
        if item.credentials is None and (account is None or account.kind != item.values["kind"]):
            problems.append(
                f"account '{item.name}': credentials are required for a new account or a change of kind."
            )
    if problems:
        raise ConfigError(problems)
    return planned


def apply(item: Planned, user_id: Callable[[], int]) -> tuple[str, list[str]]:
    """Create or update one account; returns ('created'|'updated'|'unchanged', changed fields)."""
    account = ProviderAccount.objects.filter(name=item.name).first()
    created = account is None
    if created:
        account = ProviderAccount(name=item.name)
    values = dict(item.values)
    if values["kind"] != GENERIC:
        values[API_CONFIG] = {}  # only the generic kind has one (the form does the same)
    provider_class = provider_class_for(values["kind"], values[API_CONFIG])
    if created:  # an existing account keeps its stored rate and burst when the document has none
        values.setdefault("rate_limit", provider_class.default_rate_limit)
        values.setdefault("rate_burst", provider_class.default_rate_burst)
        values.setdefault("status_map", provider_class.default_status_map)
        values.setdefault("priority_map", provider_class.default_priority_map)
    changed = [name for name, value in values.items() if created or getattr(account, name) != value]
    for name in changed:
        setattr(account, name, values[name])
    credentials_changed = False
    if item.credentials is not None:
        try:
            stored = account.get_credentials() if not created else {}
        except CredentialsUnreadable:
            stored = {}
        if created or stored != item.credentials:
            account.set_credentials(item.credentials)
            credentials_changed = True
    if not changed and not credentials_changed:
        return "unchanged", []
    try:
        account.full_clean(exclude=["credentials"])
    except ValidationError as exc:  # raised inside the import's transaction: all is rolled back
        raise ConfigError(
            [
                f"account '{item.name}': {field}: {' '.join(messages)}"
                for field, messages in exc.message_dict.items()
            ]
        ) from exc
    account.save()
    fields = [ProviderAccount._meta.get_field(name).verbose_name for name in changed]
    if credentials_changed:
        fields.append(CREDENTIALS_LABEL)
    LogEntry.objects.log_actions(
        user_id=user_id(),
        queryset=[account],
        action_flag=ADDITION if created else CHANGE,
        change_message=[{"added": {}}] if created else [{"changed": {"fields": fields}}],
        single_object=True,
    )
    return ("created" if created else "updated"), fields


def system_user_id() -> int:
    """The inactive user import_accounts writes LogEntries as when no --user is given."""
    user, made = get_user_model().objects.get_or_create(
        username=SYSTEM_USERNAME, defaults={"is_active": False}
    )
    if made:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user.pk


def import_accounts(document: Any, *, environ: Mapping[str, str] | None = None, user=None) -> ImportReport:
    """Check the whole document, then create/update accounts in one transaction."""
    planned = check(document, os.environ if environ is None else environ)
    report = ImportReport()
    with transaction.atomic():
        # The system user is made only when there is something to record.
        user_id = (lambda: user.pk) if user is not None else system_user_id
        for item in planned:
            outcome, fields = apply(item, user_id)
            if outcome == "created":
                report.created.append(item.name)
            elif outcome == "updated":
                report.updated[item.name] = fields
            else:
                report.unchanged.append(item.name)
    return report
