"""What a valid value is for each number (and each engine setting) of a provider account.

One table, read by the account form, import_accounts, the model's validators and database
constraints, and the sync engine, which refuses a stored value outside it (a configuration
error: nothing is sent) instead of letting 1/rate overflow or a zero timeout fail a request
after it was recorded as sent.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

#: Requests per second: 0 means "no limit"; otherwise one request per 1,000 s at the slowest.
RATE_LIMIT_MIN, RATE_LIMIT_MAX = 0.001, 100_000.0
#: Requests that may go at once after a quiet spell (the bucket's size): 1 spaces every request
#: by 1/rate; a burst above the rate lets a short queue go in a second instead of in order.
RATE_BURST_MIN, RATE_BURST_MAX = 1, 10_000
#: Seconds to wait for each answer: a push may make two calls (a token, then the ticket), and
#: both must fit in the task's soft time limit (120 s by default).
TIMEOUT_MIN, TIMEOUT_MAX = 0.1, 60.0


def is_number(value: Any, *, low: float, high: float) -> bool:
    """A real, finite number within [low, high] (JSON lets through NaN, Infinity and 1e999)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and low <= value <= high
    )


def rate_limit_problem(value: Any) -> str | None:
    if value == 0 and is_number(value, low=0, high=0):
        return None
    if is_number(value, low=RATE_LIMIT_MIN, high=RATE_LIMIT_MAX):
        return None
    return (
        f"The rate limit must be 0 (no limit) or a number of requests per second from "
        f"{RATE_LIMIT_MIN:g} to {RATE_LIMIT_MAX:,.0f}."
    )


def rate_burst_problem(value: Any) -> str | None:
    if is_number(value, low=RATE_BURST_MIN, high=RATE_BURST_MAX) and int(value) == value:
        return None
    return f"The burst must be a whole number of requests from {RATE_BURST_MIN} to {RATE_BURST_MAX:,}."


def timeout_problem(value: Any) -> str | None:
    if is_number(value, low=TIMEOUT_MIN, high=TIMEOUT_MAX):
        return None
    return f"The timeout must be a number of seconds from {TIMEOUT_MIN:g} to {TIMEOUT_MAX:g}."


def validate_rate_limit(value: Any) -> None:
    problem = rate_limit_problem(value)
    if problem:
        raise ValidationError(problem, code="rate_limit_range")


def validate_rate_burst(value: Any) -> None:
    problem = rate_burst_problem(value)
    if problem:
        raise ValidationError(problem, code="rate_burst_range")


def validate_timeout(value: Any) -> None:
    problem = timeout_problem(value)
    if problem:
        raise ValidationError(problem, code="timeout_range")


def _group_names(value: Any) -> bool:
    # A single name is read as a list of one (tickets/access.py).
    names = [value] if isinstance(value, str) else value
    return isinstance(names, list) and bool(names) and all(isinstance(n, str) and n.strip() for n in names)


def _web_url(value: Any) -> bool:
    try:
        URLValidator(schemes=["http", "https"])(value)
    except (ValidationError, TypeError):
        return False
    return True


def _search_url(value: Any) -> bool:
    # Exactly one {query} and no other braces: the page puts the text to look for there.
    return (
        isinstance(value, str)
        and value.count("{query}") == 1
        and "{" not in value.replace("{query}", "")
        and "}" not in value.replace("{query}", "")
        and _web_url(value.replace("{query}", "x"))
    )


#: Account settings the console reads (tickets/sync.py, tickets/limits.py, tickets/access.py,
#: tickets/lookup.py), each with what a valid value is. A wrong type would otherwise fail every
#: push of the account.
ENGINE_SETTINGS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "retry_unknown_creates": (lambda v: isinstance(v, bool), "true or false"),
    "breaker_threshold": (
        lambda v: is_number(v, low=1, high=1000) and int(v) == v,
        "a whole number from 1 to 1000",
    ),
    "breaker_cooldown": (
        lambda v: is_number(v, low=0.1, high=86400),
        "a number of seconds from 0.1 to 86400 (a day; pause the account for longer)",
    ),
    "allowed_groups": (_group_names, 'a group name or a list of them, e.g. ["Support EU"]'),
    # The provider's own UI, linked from a ticket whose create's outcome is unknown.
    "web_url": (_web_url, "an http(s) address of the provider's own UI"),
    "web_search_url": (
        _search_url,
        "an http(s) address with {query} where the text to search "
        "for goes, e.g. https://acme.example.com/search?q={query}",
    ),
}


def engine_setting(settings: Any, key: str) -> Any:
    """The account's value of an engine setting, or None when it is unset or not valid (a row
    written around the form and the import must not break, or loosen, the engine)."""
    value = settings.get(key) if isinstance(settings, dict) else None
    valid, _ = ENGINE_SETTINGS[key]
    return value if value is not None and valid(value) else None
