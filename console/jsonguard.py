"""One guard for every JSON value a person or a file hands the console.

Python's json module parses `NaN`, `Infinity` and 1e999 (as float infinity), recurses once
per nesting level (a few thousand `[` raise RecursionError), and refuses integers longer
than 4,300 digits with a plain ValueError. None of that may reach the database (PostgreSQL's
jsonb rejects NaN and Infinity) or escape as a 500. `loads` bounds size and depth before it
parses, and `value_problem` checks an already parsed value (YAML, a form's cleaned data).
`GuardedJSONField` is the form field every JSON input uses.
"""

from __future__ import annotations

import json
import math
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput

#: Deepest nesting accepted (objects and lists); real settings and fields use two or three.
MAX_DEPTH = 32
#: Longest JSON text accepted from one form field or cell (characters).
MAX_CHARS = 256 * 1024
#: Most values (objects, lists, scalars) one value may hold.
MAX_NODES = 200_000
#: Largest integer magnitude kept (a signed 64-bit number, what databases and APIs store).
MAX_INT = 2**63 - 1


# PostgreSQL's jsonb cannot hold \u0000 (SQLite can): refused on both, so both behave alike.
NUL_PROBLEM = "Text may not contain NUL (\\u0000) characters."


class JSONRefused(ValueError):
    """The text is not JSON the console accepts; the message says why, for the person.

    `syntax`: the text is simply not JSON (as opposed to JSON beyond the bounds), so a field
    that also takes plain text may keep it as text.
    """

    def __init__(self, message: str, *, syntax: bool = False) -> None:
        super().__init__(message)
        self.syntax = syntax


def nesting_depth(text: str) -> int:
    """How deep `[` and `{` nest in `text`, outside strings (without parsing it)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(0, depth - 1)
    return deepest


def _refuse_constant(name: str) -> Any:
    raise JSONRefused(f"{name} is not a number JSON allows; enter a finite number.")


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH, max_chars: int = MAX_CHARS) -> Any:
    """json.loads with bounds; raises JSONRefused (a ValueError) with a readable reason."""
    if isinstance(text, bytes | bytearray):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise JSONRefused("The text is not UTF-8.") from None  # the cause holds the whole text
    if len(text) > max_chars:
        raise JSONRefused(f"The JSON is too long ({len(text):,} characters; at most {max_chars:,}).")
    if nesting_depth(text) > max_depth:
        raise JSONRefused(f"The JSON nests deeper than {max_depth} levels.")
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except JSONRefused:
        raise
    except json.JSONDecodeError as exc:
        raise JSONRefused(
            f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).", syntax=True
        ) from None  # the cause holds the whole text (exc.doc): an account document, a callback
    except (ValueError, RecursionError) as exc:  # e.g. an integer of more than 4,300 digits
        raise JSONRefused("Not valid JSON: a value is too large.") from exc
    problem = value_problem(value, max_depth=max_depth)
    if problem:
        raise JSONRefused(problem)
    return value


def value_problem(value: Any, *, max_depth: int = MAX_DEPTH) -> str | None:
    """Why a parsed value cannot be stored as JSON (depth, NaN/infinity, huge numbers), or None.

    Walks with an explicit stack, so a value nested far too deep is reported, not recursed into.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    visited = 0
    while stack:
        item, depth = stack.pop()
        visited += 1
        if visited > MAX_NODES:  # also ends a YAML alias bomb, whose nodes are shared
            return f"The value has more than {MAX_NODES:,} parts."
        if isinstance(item, dict | list | tuple):
            if depth >= max_depth:
                return f"The JSON nests deeper than {max_depth} levels."
            children = item.values() if isinstance(item, dict) else item
            if isinstance(item, dict):
                if not all(isinstance(key, str) for key in item):
                    return "Object keys must be text."
                if any("\x00" in key for key in item):
                    return NUL_PROBLEM
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, str):
            if "\x00" in item:
                return NUL_PROBLEM
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, float):
            if not math.isfinite(item):
                return "Numbers must be finite (no NaN, Infinity or values beyond 1e308)."
        elif isinstance(item, int):
            if abs(item) > MAX_INT:
                return f"The number {str(item)[:20]}… is too large (at most {MAX_INT:,})."
        else:
            return f"A {type(item).__name__} is not a JSON value."
    return None


class GuardedJSONField(forms.JSONField):
    """forms.JSONField whose parse is bounded: every refusal is a message on the field."""

    def to_python(self, value: Any) -> Any:
        if self.disabled or not isinstance(value, str) or value in self.empty_values:
            converted = super().to_python(value)
        else:
            try:
                converted = loads(value)
            except JSONRefused as exc:
                raise ValidationError(str(exc), code="invalid", params={"value": value}) from exc
            if isinstance(converted, str):
                from django.forms.fields import JSONString

                converted = JSONString(converted)
        problem = value_problem(converted)
        if problem:
            raise ValidationError(problem, code="invalid")
        return converted

    def bound_data(self, data: Any, initial: Any) -> Any:
        if self.disabled:
            return initial
        if data is None:
            return None
        try:
            return loads(data) if isinstance(data, str) else data
        except JSONRefused:
            return InvalidJSONInput(data)

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return super().has_changed(initial, data)
        except (ValidationError, ValueError):
            return True
