"""Error rules of a generic configuration: which answers are failures, and of which kind. Pure.

Rules are checked in order on every answer (2xx and failures); the first whose conditions all
hold decides. Without a match, a status of 300 or more is classified as for every built-in
provider (`error_for_status`), and a 2xx is a success.
"""

from __future__ import annotations

import json
from typing import Any

from providers.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderNotFoundError,
    ProviderRateLimited,
    ProviderTransientError,
    ProviderValidationError,
)
from providers.generic.template import EMPTY, MISSING, first_value, paths_problems, resolve
from providers.http import error_for_status, retry_after_seconds

OUTCOMES = ("auth", "validation", "not_found", "rate_limited", "transient", "transient_applied", "success")
RULE_KEYS = ("when", "then", "message", "field_errors", "field_names", "message_fields")
CONDITION_KEYS = ("status", "path", "equals", "in", "contains", "exists", "not_equals")
PATH_TESTS = ("equals", "in", "contains", "exists", "not_equals")
DEFAULT_MESSAGE_PATHS = ["message", "error.message", "error_description", "error", "errorMessage"]
SUCCESS = "success"


def rule_problems(rules: Any) -> list[str]:
    """What is wrong with an `errors` list, as sentences naming the rule (1-based)."""
    if not isinstance(rules, list):
        return ["'errors' must be a list of rules."]
    problems = []
    for number, rule in enumerate(rules, start=1):
        problems += [f"Rule {number}: {problem}" for problem in _rule_problems(rule)]
    return problems


def _rule_problems(rule: Any) -> list[str]:
    if not isinstance(rule, dict):
        return ['must be an object like {"when": {...}, "then": "validation"}.']
    problems = [
        f"'{key}' is not a rule key; use {', '.join(RULE_KEYS)}." for key in rule if key not in RULE_KEYS
    ]
    if rule.get("then") not in OUTCOMES:
        given = f"'then' is {json.dumps(rule['then'])}; it" if "then" in rule else "'then'"
        problems.append(f"{given} must be one of {', '.join(OUTCOMES)}.")
    when = rule.get("when")
    if not isinstance(when, dict) or not when:
        problems.append("'when' must be an object with at least one condition (status, path).")
    else:
        problems += condition_problems(when)
    for key in ("message", "field_errors"):
        if key in rule:
            problems += [f"'{key}': {problem}" for problem in paths_problems(rule[key])]
    names = rule.get("field_names", {})
    if not isinstance(names, dict) or not all(isinstance(v, str) for v in names.values()):
        problems.append("'field_names' must map the provider's field names to console field names.")
    words = rule.get("message_fields", {})
    if not isinstance(words, dict) or not all(
        isinstance(v, str) or (isinstance(v, list) and v and all(isinstance(f, str) for f in v))
        for v in words.values()
    ):
        problems.append(
            "'message_fields' must map words of the message to the console field(s) it is about, "
            'e.g. {"title": "title", "name and email": ["requester_name", "requester_email"]}.'
        )
    return problems


def condition_problems(when: dict) -> list[str]:
    problems = [
        f"'{key}' is not a condition; use {', '.join(CONDITION_KEYS)}."
        for key in when
        if key not in CONDITION_KEYS
    ]
    if "status" in when:
        statuses = when["status"]
        if not isinstance(statuses, list) or not all(
            isinstance(s, int) and not isinstance(s, bool) and 100 <= s <= 599 for s in statuses
        ):
            problems.append("'status' must be a list of HTTP statuses, e.g. [200, 400].")
    tests = [key for key in PATH_TESTS if key in when]
    if "path" in when:
        problems += (
            paths_problems(when["path"])
            if isinstance(when["path"], str)
            else ["'path' must be one response path (text)."]
        )
        if len(tests) != 1:
            problems.append(f"a 'path' needs exactly one test of {', '.join(PATH_TESTS)}.")
        elif "in" in when and not isinstance(when["in"], list):
            problems.append("'in' must be a list of values.")
        elif "exists" in when and not isinstance(when["exists"], bool):
            problems.append("'exists' must be true or false.")
    elif tests:
        problems.append(f"{', '.join(tests)} need a 'path' to test.")
    return problems


def matches(when: dict, status: int, data: Any) -> bool:
    if "status" in when and status not in when["status"]:
        return False
    if "path" not in when:
        return True
    value = resolve(data, when["path"])
    if "exists" in when:  # null counts as absent: APIs send {"error": null} on success
        return (value is not MISSING and value is not None) == when["exists"]
    if value is MISSING:
        return False  # nothing there to compare: only `exists: false` matches an absent path
    if "equals" in when:
        return same(value, when["equals"])
    if "not_equals" in when:
        return not same(value, when["not_equals"])
    if "in" in when:
        return any(same(value, option) for option in when["in"])
    if "contains" in when:
        return str(when["contains"]).lower() in _text(value).lower()
    return False


def same(value: Any, expected: Any) -> bool:
    """Equal, or equal as text for scalars (a status sent as "1" or 1)."""
    if value == expected:
        return True
    scalars = (str, int, float)
    return isinstance(value, scalars) and isinstance(expected, scalars) and str(value) == str(expected)


def _text(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(_text(item) for item in value)
    return "" if value is None else str(value)


def message_from(data: Any, paths: Any, status: int, text: str) -> str:
    """The provider's own words for a failure."""
    value = first_value(data, paths or DEFAULT_MESSAGE_PATHS)
    if value in EMPTY and paths:
        value = first_value(data, DEFAULT_MESSAGE_PATHS)
    if isinstance(value, (dict, list)):
        value = _flatten_message(value)
    if value not in EMPTY:
        return str(value)[:500]
    stripped = text.strip()
    return f"HTTP {status}: {stripped[:200]}" if stripped else f"HTTP {status}"


def _flatten_message(value: Any) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{key}: {_flatten_message(item)}" for key, item in value.items())
    if isinstance(value, list):
        return "; ".join(_flatten_message(item) for item in value)
    return str(value)


def field_errors_from(data: Any, path: Any, names: dict[str, str]) -> dict[str, list[str]]:
    """{console field ("__all__" when unmapped): [messages]} from {remote field: messages}."""
    found = first_value(data, path) if path else None
    errors: dict[str, list[str]] = {}
    if isinstance(found, dict):
        for key, messages in found.items():
            items = messages if isinstance(messages, list) else [messages]
            errors.setdefault(names.get(str(key), "__all__"), []).extend(_text(m) for m in items if m)
    elif isinstance(found, list):
        errors["__all__"] = [_flatten_message(item) for item in found if item]
    return errors


def fields_named_in(message: str, words: dict[str, Any]) -> dict[str, list[str]]:
    """The message on the console field(s) of the first of `words` it contains (any case)."""
    lowered = message.lower()
    for word, fields in words.items():
        if str(word).lower() in lowered:
            return {field: [message] for field in ([fields] if isinstance(fields, str) else fields)}
    return {}


def classify(
    rules: list[dict],
    *,
    status: int,
    data: Any,
    text: str,
    headers: dict[str, str],
    message_paths: Any = None,
) -> ProviderError | None:
    """The error this answer means (None: a success)."""
    for rule in rules or []:
        if not matches(rule.get("when") or {}, status, data):
            continue
        outcome = rule["then"]
        if outcome == SUCCESS:
            return None
        message = message_from(data, rule.get("message") or message_paths, status, text)
        field_errors = field_errors_from(data, rule.get("field_errors"), rule.get("field_names") or {})
        if not field_errors:
            field_errors = fields_named_in(message, rule.get("message_fields") or {})
        return _error(outcome, message, status, headers, field_errors)
    if status < 300:
        return None
    error = error_for_status(status, message_from(data, message_paths, status, text), headers)
    return error


def _error(
    outcome: str, message: str, status: int, headers: dict[str, str], field_errors: dict[str, list[str]]
) -> ProviderError:
    if outcome == "auth":
        return ProviderAuthError(message, http_status=status)
    if outcome == "not_found":
        return ProviderNotFoundError(message, http_status=status)
    if outcome == "rate_limited":
        return ProviderRateLimited(
            message, retry_after=retry_after_seconds(headers.get("Retry-After")), http_status=status
        )
    if outcome in ("transient", "transient_applied"):
        return ProviderTransientError(
            message, may_have_applied=outcome == "transient_applied", http_status=status
        )
    return ProviderValidationError(message, field_errors=field_errors, http_status=status)
