"""validate_config: what an admin is told before a generic configuration is saved (pure)."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from providers.generic.schema import SECTIONS, required_secrets, validate_config

VALID = {
    "label": "Helpdesk",
    "auth": {"scheme": "bearer"},
    "headers": {"X-Client": "{{ settings.client_name }}"},
    "updatable_fields": ["status", "title"],
    "status_map": {"outbound": {"open": "OPEN", "closed": "DONE"}, "inbound": {"OPEN": "open"}},
    "priority_map": {"high": 1},
    "values": {"key": "{{ ticket.reference }}:{{ ticket.revision }}:{{ operation }}"},
    "operations": {
        "create": {
            "method": "POST",
            "path": "/api/tickets",
            "headers": {"Idempotency-Key": "{{ values.key|uuid5 }}"},
            "body": {
                "$merge": ["{{ settings.defaults }}", "{{ ticket.extra.fields }}"],
                "subject": "{{ ticket.title }}",
                "due": "{{ ticket.due_at|iso|optional }}",
            },
            "response": {
                "remote_id": ["data.id", "id"],
                "remote_status": "data.status",
                "remote_url": {
                    "template": "{{ settings.portal }}/t/{{ answer.data.id }}?r={{ ticket.reference }}"
                },
            },
            "sample_response": {"data": {"id": 5, "status": "OPEN"}},
        },
        "update": {
            "method": "PATCH",
            "path": "/api/tickets/{{ ticket.remote_id }}",
            "body": {"status": "{{ remote.status }}"},
        },
        "fetch": {
            "method": "GET",
            "path": "/api/tickets",
            "query": {"ids": "{{ tickets.remote_ids|join:',' }}"},
            "batch_size": 20,
            "response": {
                "items": "data",
                "remote_id": "id",
                "remote_status": "status",
                "replies": {
                    "items": "comments",
                    "remote_id": "id",
                    "body": ["text", {"template": "{{ answer.html|optional }}"}],
                    "author": "by.name",
                    "date": "at",
                    "by_staff": [
                        {"path": "by.role", "equals": "agent"},
                        {"path": "internal", "exists": True},
                    ],
                    "skip": {"path": "kind", "in": ["system", "opening"]},
                    "newest_first": True,
                },
            },
            "sample_response": {"data": [{"id": 5, "status": "OPEN", "comments": []}]},
        },
        "reply": {
            "method": "POST",
            "path": "/api/tickets/{{ ticket.remote_id }}/notes",
            "body_type": "form",
            "body": {"text": "{{ reply.text }}"},
        },
        "test": {"method": "GET", "path": "/api/me", "accept": ["not_found"], "message": "Connected."},
    },
    "errors": [
        {
            "when": {"status": [200], "path": "ok", "equals": False},
            "then": "validation",
            "message_fields": {"subject": "title", "name and email": ["requester_name", "requester_email"]},
        }
    ],
    "error_message": ["error.detail", "message"],
}


def errors_of(change) -> dict[str, list[str]]:
    config = copy.deepcopy(VALID)
    change(config)
    return validate_config(config)


def test_a_complete_configuration_has_no_errors():
    assert validate_config(VALID) == {}


@pytest.mark.parametrize(
    ("change", "section", "words"),
    [
        (lambda c: c["values"].update(k2="{{ secrets.token }}"), "general", "only inside 'auth'"),
        (lambda c: c["values"].update({"2x": "a"}), "general", "a name is letters"),
        (lambda c: c.update(values=["a"]), "general", "'values' must be an object"),
        (
            lambda c: c["operations"]["update"]["body"].update(k="{{ values.nope }}"),
            "general",
            "'values.nope' names no value in 'values' (key)",
        ),
        (
            lambda c: c["operations"]["test"].update(headers={"K": "{{ values.key }}"}),
            "test",
            "named values exist only in the requests",
        ),
        (lambda c: c["operations"]["create"]["body"].update({"$merge": 5}), "create", "'$merge' must be"),
        (
            lambda c: c["operations"]["create"]["body"].update({"$merge": ["{{ ticket.nope }}"]}),
            "create",
            "'ticket.nope' is not known",
        ),
        (
            lambda c: c["operations"]["create"]["response"].update(remote_url={"template": "x", "y": 1}),
            "create",
            'is {"template": "..."} and nothing else',
        ),
        (
            lambda c: c["operations"]["create"]["response"].update(
                remote_url={"template": "{{ reply.text }}"}
            ),
            "create",
            "cannot be used here",
        ),
        (
            lambda c: c["operations"]["fetch"]["response"].update(
                remote_url={"template": "{{ ticket.title }}"}
            ),
            "fetch",
            "cannot be used here",
        ),
        (
            lambda c: c["operations"]["create"]["body"].update(a="{{ answer.id }}"),
            "create",
            "only in response mappings",
        ),
        (lambda c: c["operations"]["fetch"]["response"]["replies"].pop("body"), "fetch", "'body'"),
        (
            lambda c: c["operations"]["fetch"]["response"]["replies"].update(by_staff={"path": "a"}),
            "fetch",
            "needs exactly one test",
        ),
        (
            lambda c: c["operations"]["fetch"]["response"]["replies"].update(skip={"status": [200]}),
            "fetch",
            "must be a condition on a reply",
        ),
        (
            lambda c: c["operations"]["fetch"]["response"]["replies"].update(order=1),
            "fetch",
            "'order' is not",
        ),
        (lambda c: c["operations"]["create"]["response"].update(replies={}), "create", "'response.replies'"),
        (lambda c: c["errors"][0].update(message_fields={"title": 3}), "errors", "'message_fields' must"),
    ],
)
def test_each_extension_mistake_is_named_in_its_section(change, section, words):
    errors = errors_of(change)
    assert any(words in message for message in errors.get(section, [])), errors


def test_only_create_is_required():
    assert (
        validate_config(
            {"operations": {"create": {"path": "/t", "remote_id_template": "{{ ticket.reference }}"}}}
        )
        == {}
    )
    assert "create" in validate_config({"operations": {}})
    assert validate_config([]) == {"general": ["The API configuration must be a JSON object."]}


@pytest.mark.parametrize(
    ("change", "section", "words"),
    [
        (lambda c: c.update(lable="x"), "general", "'lable' is not a configuration key; use label"),
        (lambda c: c["operations"].update(delete={}), "general", "'operations.delete' is not an operation"),
        (
            lambda c: c["operations"]["create"].update(methd="GET"),
            "create",
            "'methd' is not known in 'create'",
        ),
        (
            lambda c: c["operations"]["create"].update(method="FETCH"),
            "create",
            "'method' is \"FETCH\"; it must be one of",
        ),
        (
            lambda c: c["operations"]["create"].update(path="api"),
            "create",
            "'path' must be text starting with '/'",
        ),
        (
            lambda c: c["operations"]["reply"].update(body_type="form", body=["x"]),
            "reply",
            "must be an object",
        ),
        (
            lambda c: c["operations"]["reply"].update(body_type="xml"),
            "reply",
            "'body_type' is \"xml\"; it must be one of",
        ),
        (
            lambda c: c["operations"]["create"]["body"].update(x="{{ secrets.token }}"),
            "create",
            "only inside 'auth'",
        ),
        (
            lambda c: c["operations"]["update"]["body"].update(x="{{ reply.text }}"),
            "update",
            "only in the reply",
        ),
        (
            lambda c: c["operations"]["update"].update(path="/t/{{ tickets.remote_ids }}"),
            "update",
            "only in the fetch",
        ),
        (
            lambda c: c["operations"]["create"]["body"].update(x="{{ body.a }}"),
            "create",
            "only in JWT claims",
        ),
        (
            lambda c: c["operations"]["test"].update(path="/t/{{ ticket.remote_id }}"),
            "test",
            "cannot be used here",
        ),
        (lambda c: c["headers"].update(X="{{ ticket.title }}"), "headers", "cannot be used here"),
        (
            lambda c: c["operations"]["create"]["body"].update(x="{{ ticket.title|shout }}"),
            "create",
            "not a filter",
        ),
        (lambda c: c["operations"]["create"]["response"].update(remote_id="a..b"), "create", "empty part"),
        (
            lambda c: c["operations"]["create"]["response"].update(url="x"),
            "create",
            "'response.url' is not known",
        ),
        (lambda c: c["operations"]["create"].pop("response"), "create", "needs 'response.remote_id'"),
        (lambda c: c["operations"]["fetch"]["response"].pop("remote_status"), "fetch", "remote_status"),
        (lambda c: c["operations"]["fetch"].update(batch_size=0), "fetch", "'batch_size' must be"),
        (lambda c: c["operations"]["test"].update(accept=["auth"]), "test", "'accept' must be a list"),
        (lambda c: c["operations"]["test"].update(token_only=True), "test", "needs an auth scheme"),
        (
            lambda c: c["operations"]["create"].update(sample_response={"data": {"id": 5}}),
            "create",
            "'response.remote_status' (data.status) finds nothing in the sample response",
        ),
        (
            lambda c: c["operations"]["fetch"].update(sample_response={"data": []}),
            "fetch",
            "finds no list of tickets",
        ),
        (lambda c: c.update(updatable_fields=["titel"]), "general", "'titel' is not a console field"),
        (
            lambda c: c["status_map"]["outbound"].update(done="X"),
            "general",
            "names done, not console statuses",
        ),
        (
            lambda c: c["status_map"]["inbound"].update(X="done"),
            "general",
            "names done, not console statuses",
        ),
        (lambda c: c.update(priority_map={"critical": 1}), "general", "not console priorities"),
        (lambda c: c.update(expects_json="yes"), "general", "'expects_json' must be true or false"),
        (lambda c: c["errors"].append({"when": {}, "then": "auth"}), "errors", "Rule 2"),
        (lambda c: c.update(error_message=""), "errors", "'error_message'"),
        (
            lambda c: c.update(auth={"scheme": "kerberos"}),
            "auth",
            "'scheme' is \"kerberos\"; it must be one of",
        ),
        (
            lambda c: c.update(auth={"scheme": "bearer", "tokn": "x"}),
            "auth",
            "'tokn' is not known for the bearer",
        ),
        (
            lambda c: c.update(auth={"scheme": "api_key", "in": "cookie", "name": "k"}),
            "auth",
            "header or query",
        ),
        (lambda c: c.update(auth={"scheme": "header"}), "auth", "needs 'headers'"),
        (
            lambda c: c.update(auth={"scheme": "oauth2", "grant": "implicit", "token_url": "/t"}),
            "auth",
            "'grant'",
        ),
        (lambda c: c.update(auth={"scheme": "oauth2", "grant": "password"}), "auth", "'token_url' must be"),
        (lambda c: c.update(auth={"scheme": "jwt_hs256", "claims": {}}), "auth", "'header' must name"),
        (
            lambda c: c.update(
                auth={"scheme": "jwt_hs256", "header": "X", "claims": {"t": "{{ ticket.title }}"}}
            ),
            "auth",
            "cannot be used here",
        ),
    ],
)
def test_each_mistake_is_named_in_its_section(change, section, words):
    errors = errors_of(change)
    assert any(words in message for message in errors.get(section, [])), errors


@pytest.mark.parametrize(
    ("auth", "needed"),
    [
        ({"scheme": "none"}, []),
        ({"scheme": "bearer"}, ["token"]),
        ({"scheme": "basic"}, ["username", "password"]),
        ({"scheme": "api_key", "in": "query", "name": "key"}, ["api_key"]),
        ({"scheme": "header", "headers": {"Authorization": "Basic {{ secrets.token }}"}}, ["token"]),
        ({"scheme": "oauth2", "grant": "password", "token_url": "/t"}, ["username", "password", "client_id"]),
        (
            {"scheme": "oauth2", "grant": "password", "token_url": "/t", "client_auth": "basic"},
            ["username", "password", "client_id", "client_secret"],
        ),
        (
            {"scheme": "oauth2", "grant": "client_credentials", "token_url": "/t"},
            ["client_id", "client_secret"],
        ),
        (
            {
                "scheme": "oauth2",
                "grant": "client_credentials",
                "token_url": "/t",
                "fields": {"grant_type": None, "client_id": None, "key": "{{ secrets.api_key }}"},
            },
            ["client_secret", "api_key"],
        ),
        (
            {"scheme": "jwt_hs256", "header": "X", "claims": {"a": "{{ secrets.username|default:'x' }}"}},
            ["signing_key"],
        ),
    ],
)
def test_the_secrets_an_auth_scheme_needs(auth, needed):
    assert required_secrets(auth) == needed


# --- whatever is pasted, validate_config answers in sentences and never raises ------------------
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=3)
    ),
    max_leaves=10,
)
TEMPLATES = st.sampled_from(
    ["{{", "}}", "{{ ticket }}", "{{ a|b:c }}", "{{ x|date:'%Q' }}", "{{ now|iso|int }}", "{{ secrets.x }}"]
)


def leaves(value, path=()):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, (*path, index))
    yield path


LEAVES = list(leaves(VALID))


@settings(max_examples=200, deadline=None)
@given(
    replacements=st.lists(st.tuples(st.sampled_from(LEAVES), JSON | TEMPLATES), max_size=4),
    extra=st.dictionaries(st.text(max_size=10), JSON, max_size=2),
)
def test_any_mutation_of_a_configuration_is_answered_in_sentences(replacements, extra):
    config = copy.deepcopy(VALID)
    for path, value in replacements:
        if not path:
            config = value
            continue
        target = config
        try:
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    if isinstance(config, dict):
        config.update(extra)
    errors = validate_config(config)
    assert isinstance(errors, dict)
    for section, messages in errors.items():
        assert section in SECTIONS
        assert messages and all(isinstance(m, str) and m for m in messages)
    required_secrets(config.get("auth") if isinstance(config, dict) else None)


def test_the_sample_answer_must_hold_the_list_of_replies():
    errors = errors_of(lambda c: c["operations"]["fetch"]["sample_response"]["data"][0].pop("comments"))
    assert errors == {"fetch": ["'response.replies.items' (comments) finds nothing in the sample response."]}
