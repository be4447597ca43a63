"""Checking a generic configuration before it is saved: `validate_config(config)`. Pure.

Errors are keyed by section ("auth", "headers", "create", "update", "fetch", "reply",
"test", "errors", "general") and are sentences an admin can act on. A configuration
without errors can be rendered and parsed: every template parses, names only what exists
where it is used, and every response path is well formed.
"""

from __future__ import annotations

import json
from typing import Any

from providers.generic import rules
from providers.generic.template import (
    MERGE_KEY,
    MISSING,
    SECRET_KEYS,
    TEMPLATE_KEY,
    TemplateError,
    check,
    expressions,
    first_value,
    is_template_mapping,
    paths_problems,
    resolve,
)
from providers.vocabulary import CONSOLE_PRIORITIES, CONSOLE_STATUSES, TICKET_FIELD_LABELS

OPERATIONS = ("create", "update", "fetch", "reply", "test")
SECTIONS = ("general", "auth", "headers", *OPERATIONS, "errors")
TOP_KEYS = (
    "label",
    "description",
    "auth",
    "headers",
    "expects_json",
    "create_is_idempotent",
    "updatable_fields",
    "status_map",
    "priority_map",
    "operations",
    "values",
    "errors",
    "error_message",
)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
BODY_TYPES = ("json", "form", "multipart", "none")
REQUEST_KEYS = (
    "method",
    "path",
    "query",
    "headers",
    "body_type",
    "body",
    "auth",
    "response",
    "sample_response",
)
OPERATION_KEYS = {
    "create": (*REQUEST_KEYS, "remote_id_template"),
    "update": REQUEST_KEYS,
    "fetch": (*REQUEST_KEYS, "batch_size"),
    "reply": REQUEST_KEYS,
    "test": (*REQUEST_KEYS, "accept", "message", "token_only"),
}
REF_PATHS = ("remote_id", "remote_number", "remote_url", "remote_status")
RESPONSE_KEYS = {
    "create": REF_PATHS,
    "update": REF_PATHS,
    "fetch": ("items", *REF_PATHS, "fields", "replies"),
    "reply": (),
    "test": (),
}
TEST_ACCEPTS = ("not_found", "validation")
#: fetch `response.replies`: how one ticket's conversation is read from a fetch item.
REPLY_KEYS = ("items", "remote_id", "body", "author", "date", "by_staff", "skip", "newest_first")
REPLY_MAPPINGS = ("remote_id", "body", "author", "date")
MAX_BATCH_SIZE = 500

#: The context roots each request may read (secrets only in auth; body only in JWT claims).
TICKET_ROOTS = ("ticket", "remote", "settings", "now", "operation")
REQUEST_ROOTS = {
    "create": (*TICKET_ROOTS, "values"),
    "update": (*TICKET_ROOTS, "values"),
    "fetch": (*TICKET_ROOTS, "tickets", "values"),
    "reply": (*TICKET_ROOTS, "reply", "values"),
    "test": ("settings", "now", "operation"),
}
#: What a response mapping written as a template reads: the answer (a fetch item), and the
#: ticket where the answer is about one known ticket.
RESPONSE_ROOTS = {
    "create": ("answer", *TICKET_ROOTS),
    "update": ("answer", *TICKET_ROOTS),
    "fetch": ("answer", "settings", "now", "operation"),
}
#: Named values (`values`): templates over the ticket, read as {{ values.<name> }}.
VALUE_ROOTS = TICKET_ROOTS
#: Headers on every call (token calls and the connection test included): no ticket there.
COMMON_ROOTS = ("settings", "now", "operation")
AUTH_ROOTS = ("secrets", "settings", "now", "operation")
CLAIM_ROOTS = (*AUTH_ROOTS, "body")

AUTH_SCHEMES = ("none", "bearer", "header", "basic", "api_key", "oauth2", "jwt_hs256")
AUTH_KEYS = {
    "none": (),
    "bearer": ("header", "prefix"),
    "header": ("headers",),
    "basic": (),
    "api_key": ("in", "name"),
    "oauth2": (
        "grant",
        "token_url",
        "client_auth",
        "body_type",
        "fields",
        "headers",
        "token_path",
        "refresh_token_path",
        "expires_in_path",
        "lifetime",
        "refresh",
        "header",
        "prefix",
    ),
    "jwt_hs256": ("header", "prefix", "claims", "headers"),
}
#: The secrets each scheme always needs (templates add the ones they name).
SCHEME_SECRETS = {
    "bearer": ("token",),
    "basic": ("username", "password"),
    "api_key": ("api_key",),
    "jwt_hs256": ("signing_key",),
}
GRANTS = ("password", "client_credentials")
#: RFC 6749's token request fields per grant; client_id/client_secret move to an
#: Authorization: Basic header when client_auth is "basic".
GRANT_FIELDS = {
    "password": {
        "grant_type": "password",
        "username": "{{ secrets.username }}",
        "password": "{{ secrets.password }}",
        "client_id": "{{ secrets.client_id }}",
        "client_secret": "{{ secrets.client_secret|optional }}",
    },
    "client_credentials": {
        "grant_type": "client_credentials",
        "client_id": "{{ secrets.client_id }}",
        "client_secret": "{{ secrets.client_secret }}",
    },
}
CLIENT_FIELDS = ("client_id", "client_secret")
TOKEN_SCHEMES = ("oauth2",)


def validate_config(config: Any) -> dict[str, list[str]]:
    """Errors by section; an empty dict means the configuration can be saved."""
    errors: dict[str, list[str]] = {}

    def add(section: str, problems: list[str]) -> None:
        if problems:
            errors.setdefault(section, []).extend(problems)

    if not isinstance(config, dict):
        return {"general": ["The API configuration must be a JSON object."]}
    add("general", _general_problems(config))
    auth = config.get("auth", {"scheme": "none"})
    add("auth", auth_problems(auth))
    add("headers", _headers_problems(config.get("headers", {}), COMMON_ROOTS, "headers"))
    operations = config.get("operations")
    if not isinstance(operations, dict):
        add("create", ["The configuration needs 'operations' with at least a 'create' request."])
        operations = {}
    for name in operations:
        if name not in OPERATIONS:
            add("general", [f"'operations.{name}' is not an operation; use {', '.join(OPERATIONS)}."])
    if "create" not in operations and isinstance(config.get("operations"), dict):
        add("create", ["A 'create' request is required: it is how tickets reach the provider."])
    for name in OPERATIONS:
        if name in operations:
            add(name, operation_problems(name, operations[name], auth))
    add("general", values_problems(config.get("values", {}), config.get("operations")))
    add("errors", rules.rule_problems(config.get("errors", [])))
    if "error_message" in config:
        add("errors", [f"'error_message': {p}" for p in paths_problems(config["error_message"])])
    return errors


def _general_problems(config: dict) -> list[str]:
    problems = [
        f"'{key}' is not a configuration key; use {', '.join(TOP_KEYS)}."
        for key in config
        if key not in TOP_KEYS
    ]
    for key in ("label", "description"):
        if key in config and not isinstance(config[key], str):
            problems.append(f"'{key}' must be text.")
    if isinstance(config.get("label"), str) and len(config["label"]) > 100:
        problems.append("'label' must be at most 100 characters.")
    for key in ("expects_json", "create_is_idempotent"):
        if key in config and not isinstance(config[key], bool):
            problems.append(f"'{key}' must be true or false.")
    fields = config.get("updatable_fields")
    if fields is not None:
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            problems.append("'updatable_fields' must be a list of console field names, or null for all.")
        else:
            problems += [
                f"'updatable_fields': '{name}' is not a console field; use {', '.join(TICKET_FIELD_LABELS)}."
                for name in fields
                if name not in TICKET_FIELD_LABELS
            ]
    problems += status_map_problems(config.get("status_map", {}))
    problems += priority_map_problems(config.get("priority_map", {}))
    return problems


def status_map_problems(value: Any) -> list[str]:
    if not isinstance(value, dict):
        return ["'status_map' must be an object with 'outbound' and 'inbound' maps."]
    problems = [
        f"'status_map.{key}' is not known; use outbound, inbound."
        for key in value
        if key not in ("outbound", "inbound")
    ]
    for direction in ("outbound", "inbound"):
        table = value.get(direction, {})
        if not isinstance(table, dict) or not all(isinstance(v, (str, int)) for v in table.values()):
            problems.append(f"'status_map.{direction}' must map statuses to statuses (text).")
            continue
        console_side = table.keys() if direction == "outbound" else table.values()
        unknown = sorted({str(s) for s in console_side if s not in CONSOLE_STATUSES})
        if unknown:
            problems.append(
                f"'status_map.{direction}' names {', '.join(unknown)}, not console statuses "
                f"({', '.join(CONSOLE_STATUSES)})."
            )
    return problems


def priority_map_problems(value: Any) -> list[str]:
    if not isinstance(value, dict):
        return ["'priority_map' must map console priorities to the provider's values."]
    unknown = sorted(key for key in value if key not in CONSOLE_PRIORITIES)
    if unknown:
        return [
            f"'priority_map' names {', '.join(unknown)}, not console priorities "
            f"({', '.join(CONSOLE_PRIORITIES)})."
        ]
    return []


def _headers_problems(headers: Any, roots, where: str) -> list[str]:
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        return [f"'{where}' must be an object of header names to text."]
    return check(headers, roots, where)


def values_problems(values: Any, operations: Any) -> list[str]:
    """Named values are templates over the ticket; every {{ values.<name> }} names one."""
    if not isinstance(values, dict):
        return ['\'values\' must be an object of names to templates, e.g. {"key": "{{ ticket.reference }}"}.']
    problems = []
    for name, template in values.items():
        if not str(name).isidentifier():
            problems.append(f"'values.{name}': a name is letters, digits and '_' (e.g. transaction_key).")
        problems += check(template, VALUE_ROOTS, f"values.{name}")
    try:
        used = list(expressions(operations)) if isinstance(operations, dict) else []
    except TemplateError:
        used = []  # reported where the template is
    for expression in used:
        if expression.root != "values":
            continue
        if not expression.path:
            problems.append("'values' needs a name, e.g. {{ values.transaction_key }}.")
        elif expression.path[0] not in values:
            known = ", ".join(sorted(map(str, values))) or "none are defined"
            problems.append(f"'{expression.name}' names no value in 'values' ({known}).")
    return problems


# --- operations -----------------------------------------------------------------------------
def operation_problems(name: str, spec: Any, auth: Any) -> list[str]:
    if not isinstance(spec, dict):
        return [f"'{name}' must be an object describing the request."]
    allowed = OPERATION_KEYS[name]
    problems = [
        f"'{key}' is not known in '{name}'; use {', '.join(allowed)}." for key in spec if key not in allowed
    ]
    if name == "test" and spec.get("token_only"):
        return problems + _token_only_problems(spec, auth)
    roots = REQUEST_ROOTS[name]
    method = spec.get("method", "POST")
    if method not in METHODS:
        problems.append(f"'method' is {json.dumps(method)}; it must be one of {', '.join(METHODS)}.")
    path = spec.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        problems.append("'path' must be text starting with '/', e.g. /api/tickets/{{ ticket.remote_id }}.")
    else:
        problems += check(path, roots, "path")
    if "query" in spec:
        query = spec["query"]
        if not isinstance(query, dict):
            problems.append("'query' must be an object of parameter names to values.")
        else:
            problems += check(query, roots, "query")
    if "headers" in spec:
        problems += _headers_problems(spec["headers"], roots, "headers")
    problems += _body_problems(spec, roots)
    if "auth" in spec and not isinstance(spec["auth"], bool):
        problems.append("'auth' must be true or false (false: sent without credentials).")
    problems += _response_problems(name, spec)
    if name == "create" and "remote_id_template" in spec:
        template = spec["remote_id_template"]
        if not isinstance(template, str):
            problems.append("'remote_id_template' must be text, e.g. {{ ticket.reference }}.")
        else:
            problems += check(template, TICKET_ROOTS, "remote_id_template")
    if name == "fetch" and "batch_size" in spec:
        size = spec["batch_size"]
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= MAX_BATCH_SIZE:
            problems.append(f"'batch_size' must be a whole number from 1 to {MAX_BATCH_SIZE}.")
    if name == "test":
        accept = spec.get("accept", [])
        if not isinstance(accept, list) or any(a not in TEST_ACCEPTS for a in accept):
            problems.append(f"'accept' must be a list of {', '.join(TEST_ACCEPTS)}.")
        if "message" in spec and not isinstance(spec["message"], str):
            problems.append("'message' must be text, e.g. \"Connected.\".")
    return problems


def _token_only_problems(spec: dict, auth: Any) -> list[str]:
    problems = []
    if spec.get("token_only") is not True:
        problems.append("'token_only' must be true or left out.")
    if not (isinstance(auth, dict) and auth.get("scheme") in TOKEN_SCHEMES):
        problems.append("'token_only' needs an auth scheme that requests a token (oauth2).")
    others = sorted(set(spec) - {"token_only", "message"})
    if others:
        problems.append(f"A token-only test sends no request of its own; remove {', '.join(others)}.")
    return problems


def _body_problems(spec: dict, roots) -> list[str]:
    body_type = spec.get("body_type", "json")
    if body_type not in BODY_TYPES:
        return [f"'body_type' is {json.dumps(body_type)}; it must be one of {', '.join(BODY_TYPES)}."]
    if "body" not in spec:
        return []
    body = spec["body"]
    problems = []
    if body_type in ("form", "multipart") and not isinstance(body, dict):
        problems.append(f"A {body_type} body must be an object of field names to values.")
    if body_type == "none":
        problems.append("'body_type' none sends no body: remove 'body' or choose json, form or multipart.")
    problems += merge_problems(body)
    return problems + check(body, roots, "body")


def merge_problems(body: Any) -> list[str]:
    """Each `$merge` (in an object of the body, at any depth) is a template or a list of them."""
    problems = []
    if isinstance(body, dict):
        if MERGE_KEY in body:
            value = body[MERGE_KEY]
            items = value if isinstance(value, list) else [value]
            if not items or not all(isinstance(item, str) for item in items):
                problems.append(
                    f"'{MERGE_KEY}' must be a template or a list of templates that give objects, "
                    'e.g. ["{{ settings.extra_keys }}", "{{ ticket.extra.extra_keys }}"].'
                )
        for key, item in body.items():
            if key != MERGE_KEY:
                problems += merge_problems(item)
    elif isinstance(body, list):
        for item in body:
            problems += merge_problems(item)
    return problems


def _response_problems(name: str, spec: dict) -> list[str]:
    response = spec.get("response", {})
    if not isinstance(response, dict):
        return ["'response' must be an object of result names to response paths."]
    allowed = RESPONSE_KEYS[name]
    problems = [
        f"'response.{key}' is not known in '{name}'"
        + (f"; use {', '.join(allowed)}." if allowed else ": its answer is not read.")
        for key in response
        if key not in allowed
    ]
    for key, paths in response.items():
        if key == "replies":
            problems += [f"'response.replies': {p}" for p in replies_problems(paths)]
        elif key in ("items", "fields"):
            problems += [f"'response.{key}': {p}" for p in paths_problems(paths)]
        else:
            problems += [
                f"'response.{key}': {p}" for p in mapping_problems(paths, RESPONSE_ROOTS.get(name, ()))
            ]
    if name == "create" and "remote_id" not in response and "remote_id_template" not in spec:
        problems.append(
            "A create needs 'response.remote_id' (where the answer carries the new ticket's id) "
            "or 'remote_id_template' (when the id is one the console chose)."
        )
    if name == "fetch" and "remote_status" not in response:
        problems.append("A fetch needs 'response.remote_status': reading the status back is what it is for.")
    if not problems and "sample_response" in spec:
        problems += sample_problems(name, response, spec["sample_response"])
    return problems


def mapping_problems(value: Any, roots) -> list[str]:
    """A response mapping: a path, {"template": "..."} or a list of them (first non-empty wins)."""
    candidates = value if isinstance(value, list) else [value]
    if isinstance(value, list) and not value:
        return ["an empty list of response paths reads nothing."]
    problems = []
    for candidate in candidates:
        if isinstance(candidate, dict):
            if not is_template_mapping(candidate):
                problems.append(
                    f'a mapping written as a template is {{"{TEMPLATE_KEY}": "..."}} and nothing else.'
                )
            else:
                problems += check(candidate[TEMPLATE_KEY], roots, TEMPLATE_KEY)
        else:
            problems += paths_problems(candidate)
    return problems


def replies_problems(spec: Any) -> list[str]:
    if not isinstance(spec, dict):
        return ['must be an object like {"items": "replies", "body": "message", "remote_id": "id"}.']
    problems = [
        f"'{key}' is not known; use {', '.join(REPLY_KEYS)}." for key in spec if key not in REPLY_KEYS
    ]
    if "items" not in spec or "body" not in spec:
        problems.append("'items' (where the list of replies is) and 'body' (each reply's text) are required.")
    if "items" in spec:
        problems += [f"'items': {p}" for p in paths_problems(spec["items"])]
    for key in REPLY_MAPPINGS:
        if key in spec:
            problems += [f"'{key}': {p}" for p in mapping_problems(spec[key], ("answer", "settings"))]
    for key in ("by_staff", "skip"):
        if key in spec:
            conditions = spec[key] if isinstance(spec[key], list) else [spec[key]]
            for condition in conditions:
                if not isinstance(condition, dict) or "path" not in condition or "status" in condition:
                    problems.append(
                        f"'{key}' must be a condition on a reply such as "
                        '{"path": "admin", "not_equals": ""} (or a list of them).'
                    )
                else:
                    problems += [f"'{key}': {p}" for p in rules.condition_problems(condition)]
    if "newest_first" in spec and not isinstance(spec["newest_first"], bool):
        problems.append(
            "'newest_first' must be true or false (true: the answer lists the latest reply first)."
        )
    return problems


def sample_problems(name: str, response: dict, sample: Any) -> list[str]:
    """Every mapped path finds something in the sample answer (items: in its first item)."""
    problems = []
    item = sample
    if name == "fetch" and "items" in response:
        items = resolve(sample, response["items"]) if isinstance(response["items"], str) else MISSING
        if not isinstance(items, list) or not items:
            return [
                f"'response.items' ({response['items']}) finds no list of tickets in the sample response."
            ]
        item = items[0]
    for key, paths in response.items():
        if key == "replies":
            problems += _sample_replies_problems(paths, item)
            continue
        if key == "items" or any(is_template_mapping(p) for p in _listed(paths)):
            continue  # a template reads more than the answer: "Try it" shows what it gives
        if first_value(item, paths) is None:
            listed = paths if isinstance(paths, str) else " or ".join(paths)
            problems.append(f"'response.{key}' ({listed}) finds nothing in the sample response.")
    return problems


def _sample_replies_problems(spec: dict, item: Any) -> list[str]:
    """The list of replies is where `items` says (empty is fine: a ticket may have none)."""
    if resolve(item, spec["items"]) is MISSING:
        return [f"'response.replies.items' ({spec['items']}) finds nothing in the sample response."]
    return []


def _listed(value: Any) -> list:
    return value if isinstance(value, list) else [value]


# --- auth -----------------------------------------------------------------------------------
def auth_problems(auth: Any) -> list[str]:
    if not isinstance(auth, dict):
        return ["'auth' must be an object with a 'scheme'."]
    scheme = auth.get("scheme")
    if scheme not in AUTH_SCHEMES:
        return [f"'scheme' is {json.dumps(scheme)}; it must be one of {', '.join(AUTH_SCHEMES)}."]
    allowed = ("scheme", *AUTH_KEYS[scheme])
    problems = [
        f"'{key}' is not known for the {scheme} scheme; use {', '.join(allowed)}."
        for key in auth
        if key not in allowed
    ]
    for key in ("header", "prefix", "name", "token_url"):
        if key in auth and not isinstance(auth[key], str):
            problems.append(f"'{key}' must be text.")
    if scheme == "header":
        headers = auth.get("headers")
        if not isinstance(headers, dict) or not headers:
            problems.append(
                'The header scheme needs \'headers\', e.g. {"Authorization": "Basic {{ secrets.token }}"}.'
            )
        else:
            problems += _headers_problems(headers, AUTH_ROOTS, "headers")
    elif scheme == "api_key":
        if auth.get("in", "header") not in ("header", "query"):
            problems.append("'in' must be header or query.")
        if not isinstance(auth.get("name"), str) or not auth.get("name"):
            problems.append("'name' must name the header or query parameter, e.g. X-Api-Key.")
    elif scheme == "oauth2":
        problems += _oauth2_problems(auth)
    elif scheme == "jwt_hs256":
        if not isinstance(auth.get("header"), str) or not auth.get("header"):
            problems.append("'header' must name the header that carries the signed token, e.g. X-Token.")
        claims = auth.get("claims", {})
        if not isinstance(claims, dict):
            problems.append("'claims' must be an object of claim names to values.")
        else:
            problems += check(claims, CLAIM_ROOTS, "claims")
        if "headers" in auth:
            problems += _headers_problems(auth["headers"], AUTH_ROOTS, "headers")
    return problems


def _oauth2_problems(auth: dict) -> list[str]:
    problems = []
    if auth.get("grant") not in GRANTS:
        problems.append(f"'grant' is {json.dumps(auth.get('grant'))}; it must be one of {', '.join(GRANTS)}.")
    url = auth.get("token_url")
    if not isinstance(url, str) or not url.startswith(("/", "https://", "http://")):
        problems.append("'token_url' must be a path such as /oauth/token or an absolute URL.")
    if auth.get("client_auth", "body") not in ("body", "basic"):
        problems.append("'client_auth' must be body or basic.")
    if auth.get("body_type", "form") not in ("form", "json", "multipart"):
        problems.append("'body_type' must be form, json or multipart.")
    fields = auth.get("fields", {})
    if not isinstance(fields, dict):
        problems.append("'fields' must be an object of token request fields (null leaves one out).")
    else:
        problems += check(fields, AUTH_ROOTS, "fields")
    for key in ("token_path", "refresh_token_path", "expires_in_path"):
        if key in auth:
            problems += [f"'{key}': {p}" for p in paths_problems(auth[key])]
    lifetime = auth.get("lifetime", 3600)
    if not isinstance(lifetime, (int, float)) or isinstance(lifetime, bool) or lifetime <= 0:
        problems.append("'lifetime' must be a number of seconds above 0.")
    if "refresh" in auth and not isinstance(auth["refresh"], bool):
        problems.append("'refresh' must be true or false.")
    if "headers" in auth:
        problems += _headers_problems(auth["headers"], AUTH_ROOTS, "headers")
    return problems


def token_fields(auth: dict) -> dict[str, Any]:
    """The token request's field templates: the grant's RFC 6749 fields, then `fields` over
    them (null removes one); client credentials leave the body for client_auth basic."""
    fields = dict(GRANT_FIELDS.get(auth.get("grant"), {}))
    if auth.get("client_auth") == "basic":
        for key in CLIENT_FIELDS:
            fields.pop(key, None)
    for key, value in (auth.get("fields") or {}).items():
        if value is None:
            fields.pop(key, None)
        else:
            fields[key] = value
    return fields


def required_secrets(auth: Any) -> list[str]:
    """The credential keys the auth scheme needs (a reference made `optional` or with a
    `default` is not needed), in the order of GenericProvider.credential_fields."""
    if not isinstance(auth, dict) or auth.get("scheme") not in AUTH_SCHEMES:
        return []
    scheme = auth["scheme"]
    needed = set(SCHEME_SECRETS.get(scheme, ()))
    templates: list[Any] = [auth.get("headers", {})]
    if scheme == "oauth2":
        templates.append(token_fields(auth))
        if auth.get("client_auth") == "basic":
            needed |= set(CLIENT_FIELDS)
    if scheme == "jwt_hs256":
        templates.append(auth.get("claims", {}))
    for template in templates:
        try:
            found = list(expressions(template))
        except TemplateError:
            continue  # reported by auth_problems
        for expression in found:
            lenient = any(name in ("optional", "default") for name, _ in expression.filters)
            if expression.root == "secrets" and expression.path and not lenient:
                needed.add(expression.path[0])
    return [key for key in SECRET_KEYS if key in needed]
