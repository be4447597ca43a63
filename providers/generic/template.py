"""The generic provider's template language and response paths. Pure: no I/O, no models.

Templates are strings with `{{ expression }}` placeholders, where
`expression := path ( "|" filter ( ":" arg )? )*` and `arg` is a quoted string or an integer.
Nothing is evaluated but lookups in a fixed context and the filters below, so a
configuration can never run code. A string that is exactly one placeholder renders the raw
value (list, number, object, …); otherwise the values are interpolated as text.

Response paths read the provider's answers: dotted keys and integer indexes (`data.0.id`),
`$` for the whole answer, or a JSON pointer (`/data/0/id`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from providers.ticket_input import TicketLike

PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.S)
TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'[^']*'|"[^"]*")
      | (?P<integer>-?\d+)(?![\w.])
      | (?P<path>[A-Za-z_][\w-]*(?:\.[\w-]+)*)
      | (?P<op>[|:])
    )""",
    re.X,
)

#: The console ticket's fields a template may read: what an adapter reads of a ticket
#: (providers.ticket_input.TicketLike) but its key and its files, plus the marker helpers.
TICKET_FIELDS = frozenset(TicketLike.__annotations__) - {"pk", "attachments"} | {
    "description_with_marker",
    "marker",
}
#: Ticket fields whose own contents may be looked into (ticket.extra.order_id, ticket.tags.0).
TICKET_CONTAINERS = frozenset({"extra", "tags"})
#: The credential keys (GenericProvider.credential_fields): what `secrets.<key>` may name.
SECRET_KEYS = ("token", "username", "password", "client_id", "client_secret", "api_key", "signing_key")
#: root -> the names allowed right under it (None: any key, at any depth).
ROOTS: dict[str, frozenset[str] | None] = {
    "ticket": TICKET_FIELDS,
    "remote": frozenset({"status", "priority"}),
    "reply": frozenset({"text"}),
    "tickets": frozenset({"remote_ids"}),
    "settings": None,
    "now": frozenset(),
    "operation": frozenset(),
    "secrets": frozenset(SECRET_KEYS),
    "body": None,
    "values": None,
    "answer": None,
}
FILTERS_WITH_ARGUMENT = frozenset({"default", "date", "join", "map"})
FILTERS = frozenset(
    {"default", "date", "iso", "join", "upper", "lower", "string", "int", "json", "base64", "optional"}
    | {"first", "map", "capitalize", "title", "uuid5"}
)
#: Filters that let an empty value through a response template (see render_mapped).
LENIENT_FILTERS = frozenset({"optional", "default"})
#: A body object's key whose value (a template or a list of them) renders to objects spread
#: into that object; the object's own keys win.
MERGE_KEY = "$merge"
#: A response mapping written as a template rather than a path: {"template": "..."}.
TEMPLATE_KEY = "template"
EMPTY = (None, "", [], {})


class TemplateError(ValueError):
    """A template or response path that cannot work: a configuration error, in words."""


class MergeError(ValueError):
    """A `$merge` value that is not an object: the data (a ticket's or a setting's), not the
    template, is wrong, so it is the ticket that cannot be sent."""


class Omitted:
    """What an empty `optional` value renders to: its body key (or query/header) is left out."""

    def __repr__(self) -> str:
        return "OMITTED"


OMITTED = Omitted()


@dataclass(frozen=True)
class Expression:
    root: str
    path: tuple[str, ...]
    filters: tuple[tuple[str, Any], ...]

    @property
    def name(self) -> str:
        return ".".join((self.root, *self.path))


# --- parsing ----------------------------------------------------------------------------------
def parse_expression(text: str) -> Expression:
    tokens = _tokens(text)
    if not tokens or tokens[0][0] != "path":
        raise TemplateError(f"'{{{{{text}}}}}' must start with a name such as ticket.title.")
    root, *path = tokens[0][1].split(".")
    filters: list[tuple[str, Any]] = []
    rest = tokens[1:]
    while rest:
        if rest[0] != ("op", "|") or len(rest) < 2 or rest[1][0] != "path" or "." in rest[1][1]:
            raise TemplateError(f"'{{{{{text}}}}}': after the name come only '|filter' or '|filter:arg'.")
        name, rest = rest[1][1], rest[2:]
        argument: Any = None
        if rest and rest[0] == ("op", ":"):
            if len(rest) < 2 or rest[1][0] not in ("string", "integer"):
                raise TemplateError(
                    f"'{{{{{text}}}}}': the argument of '{name}' must be quoted text or a whole number."
                )
            kind, value = rest[1]
            argument = value[1:-1] if kind == "string" else int(value)
            rest = rest[2:]
        filters.append((name, argument))
    return Expression(root, tuple(path), tuple(filters))


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, position, text = [], 0, text.rstrip()
    while position < len(text):
        match = TOKEN.match(text, position)
        if not match or match.end() == position:
            raise TemplateError(f"'{{{{{text}}}}}' cannot be read near '{text[position:].strip()[:20]}'.")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def parse(text: str) -> list[str | Expression]:
    """A template string as literal text and expressions, in order."""
    parts: list[str | Expression] = []
    position = 0
    for match in PLACEHOLDER.finditer(text):
        if match.start() > position:
            parts.append(text[position : match.start()])
        parts.append(parse_expression(match.group(1)))
        position = match.end()
    tail = text[position:]
    if "{{" in tail:
        raise TemplateError(f"'{text[:60]}' opens a '{{{{' placeholder that is never closed with '}}}}'.")
    if tail:
        parts.append(tail)
    return parts


def expressions(value: Any) -> Iterable[Expression]:
    """Every expression in a template value (a string, or strings at any depth of lists/objects)."""
    if isinstance(value, str):
        for part in parse(value):
            if isinstance(part, Expression):
                yield part
    elif isinstance(value, dict):
        for item in value.values():
            yield from expressions(item)
    elif isinstance(value, list):
        for item in value:
            yield from expressions(item)


def check(value: Any, allowed_roots: Iterable[str], where: str) -> list[str]:
    """What is wrong with a template value used at `where`, as sentences (empty: it is fine)."""
    allowed = set(allowed_roots)
    problems: list[str] = []
    try:
        found = list(expressions(value))
    except TemplateError as exc:
        return [f"{where}: {exc}"]
    for expression in found:
        problem = _check_expression(expression, allowed)
        if problem:
            problems.append(f"{where}: {problem}")
    return problems


def _check_expression(expression: Expression, allowed: set[str]) -> str:
    root, path = expression.root, expression.path
    if root not in ROOTS:
        return f"'{expression.name}' starts with an unknown name; use one of {', '.join(sorted(ROOTS))}."
    if root not in allowed:
        place = ROOT_PLACES.get(root, "not in this part of the configuration")
        return f"'{expression.name}' cannot be used here: {place}."
    names = ROOTS[root]
    if names is not None:
        if names and not path:
            return f"'{root}' needs a field, one of {', '.join(sorted(names))} (e.g. {root}.{min(names)})."
        if path and path[0] not in names:
            choices = ", ".join(sorted(names)) if names else "nothing"
            return f"'{expression.name}' is not known; after '{root}.' comes {choices}."
        deeper_allowed = root == "ticket" and path[0] in TICKET_CONTAINERS or root == "tickets"
        if len(path) > 1 and not deeper_allowed:
            return f"'{expression.name}' is not known: '{root}.{path[0]}' has no fields."
    for name, argument in expression.filters:
        if name not in FILTERS:
            return f"'{name}' is not a filter; use one of {', '.join(sorted(FILTERS))}."
        if name in FILTERS_WITH_ARGUMENT and argument is None and name != "default":
            return f"the filter '{name}' needs an argument, e.g. {name}:{FILTER_EXAMPLES[name]}."
        if name not in FILTERS_WITH_ARGUMENT and argument is not None:
            return f"the filter '{name}' takes no argument."
    return ""


ROOT_PLACES = {
    "secrets": "credentials may be used only inside 'auth', never in paths, queries or bodies",
    "body": "the request body may be read only in JWT claims",
    "reply": "the reply text exists only in the reply request",
    "tickets": "the list of tickets exists only in the fetch request",
    "ticket": "there is no ticket in the connection test, in auth or in the headers of every call",
    "remote": "there is no ticket in the connection test, in auth or in the headers of every call",
    "values": "named values exist only in the requests of create, update, fetch and reply",
    "answer": "the provider's answer exists only in response mappings written as templates",
}
FILTER_EXAMPLES = {"date": "'%Y-%m-%d %H:%M:%S'", "join": "','", "map": "'setting_key'"}


# --- rendering --------------------------------------------------------------------------------
def render(value: Any, context: dict[str, Any], *, quote_text: bool = False) -> Any:
    """`value` with every template string rendered; dict keys whose value is OMITTED are left out."""
    if isinstance(value, str):
        return render_string(value, context, quote_text=quote_text)
    if isinstance(value, dict):
        merged = merged_objects(value[MERGE_KEY], context) if MERGE_KEY in value else {}
        rendered = {
            key: render(item, context, quote_text=quote_text)
            for key, item in value.items()
            if key != MERGE_KEY
        }
        return {**merged, **{key: item for key, item in rendered.items() if item is not OMITTED}}
    if isinstance(value, list):
        return [
            item for item in (render(v, context, quote_text=quote_text) for v in value) if item is not OMITTED
        ]
    return value


def merged_objects(templates: Any, context: dict[str, Any]) -> dict[str, Any]:
    """The objects a `$merge` value renders to, spread in order (later ones win); an empty
    value (null, "", {}) adds nothing, anything else that is not an object is refused."""
    merged: dict[str, Any] = {}
    for template in templates if isinstance(templates, list) else [templates]:
        value = render(template, context)
        if value is OMITTED or value in EMPTY:
            continue
        if not isinstance(value, dict):
            source = template.strip("{} ") if isinstance(template, str) else MERGE_KEY
            raise MergeError(
                f"'{MERGE_KEY}' spreads JSON objects into the request body, but {source} is "
                f"{type(value).__name__ if not isinstance(value, str) else 'text'}: "
                "give it as an object of key: value pairs."
            )
        merged.update(value)
    return merged


def render_mapped(text: str, context: dict[str, Any]) -> Any:
    """A response template: as `render_string`, but a placeholder that finds nothing (unless it
    says `optional` or has a `default`) makes the whole value empty (None), so a link is never
    built from half its parts and the next candidate of a list is tried."""
    for part in parse(text):
        if isinstance(part, Expression) and not any(f in LENIENT_FILTERS for f, _ in part.filters):
            if evaluate(part, context) in EMPTY:
                return None
    value = render_string(text, context)
    return None if value is OMITTED else value


def render_string(text: str, context: dict[str, Any], *, quote_text: bool = False) -> Any:
    parts = parse(text)
    if len(parts) == 1 and isinstance(parts[0], Expression):
        value = evaluate(parts[0], context)
        if value is OMITTED:
            return OMITTED
        value = json_safe(value)
        return quote(as_text(value), safe="") if quote_text and not isinstance(value, list) else value
    pieces, optional_empty = [], False
    for part in parts:
        if isinstance(part, str):
            pieces.append(part)
            continue
        value = evaluate(part, context)
        if value is OMITTED:
            optional_empty = True
            value = None
        text_value = as_text(json_safe(value))
        pieces.append(quote(text_value, safe="") if quote_text else text_value)
    rendered = "".join(pieces)
    return OMITTED if optional_empty and not rendered.strip() else rendered


def evaluate(expression: Expression, context: dict[str, Any]) -> Any:
    if expression.root not in context:
        raise TemplateError(f"'{expression.name}' cannot be used in this request.")
    value = lookup_path(context[expression.root], expression.path)
    optional = False
    for name, argument in expression.filters:
        if name == "optional":
            optional = True
            continue
        value = apply_filter(name, argument, value, context)
    if optional and value in EMPTY:
        return OMITTED
    return value


def lookup_path(value: Any, path: Iterable[str]) -> Any:
    for key in path:
        if isinstance(value, dict):
            value = value.get(key)
        elif isinstance(value, (list, tuple)) and _is_index(key):
            index = int(key)
            value = value[index] if -len(value) <= index < len(value) else None
        else:
            return None
    return value


def apply_filter(name: str, argument: Any, value: Any, context: dict[str, Any]) -> Any:
    """One filter; every filter is total: a null or odd value never raises."""
    if name == "default":
        return (argument if argument is not None else "") if value in EMPTY else value
    if name == "date":
        moment = as_datetime(value)
        return moment.strftime(str(argument)) if moment else ""
    if name == "iso":
        moment = as_datetime(value)
        return moment.isoformat() if moment else ""
    if name == "join":
        if isinstance(value, (list, tuple)):
            return str(argument).join(as_text(item) for item in value)
        return as_text(value)
    if name in ("upper", "lower"):
        text = as_text(value)
        return text.upper() if name == "upper" else text.lower()
    if name == "capitalize":
        text = as_text(value)
        return text[:1].upper() + text[1:]
    if name == "title":
        return as_text(value).title()
    if name == "uuid5":  # a stable id named by the value: the same text always gives the same id
        return str(uuid.uuid5(uuid.NAMESPACE_URL, as_text(json_safe(value))))
    if name == "string":
        return as_text(json_safe(value))
    if name == "int":
        try:
            return int(float(value)) if not isinstance(value, bool) else int(value)
        except (TypeError, ValueError, OverflowError):
            return None
    if name == "json":
        return json.dumps(json_safe(value), ensure_ascii=False, separators=(",", ":"))
    if name == "base64":
        return base64.b64encode(as_text(value).encode()).decode()
    if name == "first":
        if isinstance(value, (list, tuple)):
            return value[0] if value else None
        return value
    if name == "map":
        table = (context.get("settings") or {}).get(str(argument))
        if isinstance(table, dict) and as_text(value) in table:
            return table[as_text(value)]
        return value  # unmapped: the value itself, as the account's maps do
    raise TemplateError(f"'{name}' is not a filter.")


def as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def json_safe(value: Any) -> Any:
    """A rendered value as JSON can carry it (datetimes as ISO 8601 text)."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _is_index(key: str) -> bool:
    return key.lstrip("-").isdigit()


# --- response paths ---------------------------------------------------------------------------
class Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING = Missing()


def path_problem(path: Any) -> str:
    """Why `path` is not a response path ("" when it is one)."""
    if not isinstance(path, str) or not path.strip():
        return "a response path must be non-empty text such as 'data.id', '$' or '/data/id'."
    if path == "$" or path.startswith("/"):
        return ""
    if any(not part for part in path.split(".")):
        return f"'{path}' has an empty part between dots."
    return ""


def paths_problems(value: Any) -> list[str]:
    """A path or a list of paths (first non-empty wins)."""
    if isinstance(value, list):
        if not value:
            return ["an empty list of response paths reads nothing."]
        return [problem for item in value if (problem := path_problem(item))]
    problem = path_problem(value)
    return [problem] if problem else []


def path_parts(path: str) -> list[str]:
    if path == "$":
        return []
    if path.startswith("/"):
        return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]
    return path.split(".")


def resolve(data: Any, path: str) -> Any:
    """The value at `path` of `data`, or MISSING."""
    value = data
    for key in path_parts(path):
        if isinstance(value, dict):
            if key not in value:
                return MISSING
            value = value[key]
        elif isinstance(value, list) and _is_index(key):
            index = int(key)
            if not -len(value) <= index < len(value):
                return MISSING
            value = value[index]
        else:
            return MISSING
    return value


def is_template_mapping(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {TEMPLATE_KEY} and isinstance(value[TEMPLATE_KEY], str)


def mapped_value(data: Any, mapping: Any, context: dict[str, Any]) -> Any:
    """A response mapping's value: a path, {"template": ...} (rendered over `context` plus
    `answer`, the answer or fetch item), or a list of them (the first non-empty wins)."""
    if mapping is None:
        return None
    for candidate in mapping if isinstance(mapping, list) else [mapping]:
        if is_template_mapping(candidate):
            value = render_mapped(candidate[TEMPLATE_KEY], {**context, "answer": data})
        else:
            value = resolve(data, candidate)
            value = None if value is MISSING else value
        if value not in EMPTY:
            return value
    return None


def digest(value: Any) -> str:
    """A stable id for a value that has none of its own."""
    text = json.dumps(json_safe(value), sort_keys=True, ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def first_value(data: Any, paths: str | list[str] | None) -> Any:
    """The first non-empty value at any of `paths` (None when none has one)."""
    if paths is None:
        return None
    for path in [paths] if isinstance(paths, str) else paths:
        value = resolve(data, path)
        if value is not MISSING and value not in EMPTY:
            return value
    return None
