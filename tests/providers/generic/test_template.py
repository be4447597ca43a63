"""The generic provider's template language and response paths (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from providers.generic.template import (
    MISSING,
    TemplateError,
    check,
    first_value,
    parse_expression,
    render,
    resolve,
)

DUE = datetime(2026, 12, 24, 9, 30, tzinfo=UTC)
CONTEXT = {
    "ticket": {
        "title": "Printer on fire",
        "reference": "TC-000042",
        "due_at": DUE,
        "tags": ["urgent", "floor-3"],
        "extra": {"order_id": "A/17"},
        "remote_id": "42 7",
        "requester_email": "",
    },
    "remote": {"status": "OP", "priority": 3},
    "settings": {"source_id": "src-1", "queues": {"high": "Q-FAST"}},
    "now": DUE,
    "operation": "create",
}


def test_a_single_placeholder_renders_the_raw_value():
    assert render("{{ ticket.tags }}", CONTEXT) == ["urgent", "floor-3"]
    assert render("{{ remote.priority }}", CONTEXT) == 3
    assert render("{{ ticket.missing_in_context }}", CONTEXT) is None
    assert render("{{ ticket.due_at }}", CONTEXT) == "2026-12-24T09:30:00+00:00"  # JSON can carry it


def test_mixed_text_interpolates_and_null_is_empty():
    assert render("[{{ ticket.reference }}] {{ ticket.title }}", CONTEXT) == "[TC-000042] Printer on fire"
    assert render("by {{ ticket.requester_name }}.", CONTEXT) == "by ."


def test_bodies_render_at_any_depth_and_optional_empty_keys_are_left_out():
    body = [
        {
            "title": "{{ ticket.title }}",
            "email": "{{ ticket.requester_email|optional }}",
            "meta": {"order": "{{ ticket.extra.order_id }}", "tag": "{{ ticket.tags.0|upper }}", "n": 5},
        }
    ]
    assert render(body, CONTEXT) == [
        {"title": "Printer on fire", "meta": {"order": "A/17", "tag": "URGENT", "n": 5}}
    ]


def test_path_values_are_url_quoted():
    assert render(
        "/tickets/{{ ticket.remote_id }}/{{ ticket.extra.order_id }}", CONTEXT, quote_text=True
    ) == ("/tickets/42%207/A%2F17")


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ ticket.due_at|date:'%Y-%m-%d %H:%M:%S' }}", "2026-12-24 09:30:00"),
        ("{{ ticket.nothing|date:'%Y' }}", ""),
        ("{{ now|iso }}", "2026-12-24T09:30:00+00:00"),
        ("{{ ticket.tags|join:',' }}", "urgent,floor-3"),
        ("{{ ticket.tags|first }}", "urgent"),
        ("{{ ticket.nothing|default:'none' }}", "none"),
        ("{{ ticket.title|lower }}", "printer on fire"),
        ("{{ remote.priority|string }}", "3"),
        ("{{ ticket.extra.order_id|int }}", None),
        ("{{ remote.priority|int }}", 3),
        ("{{ ticket.extra|json }}", '{"order_id":"A/17"}'),
        ("{{ settings.source_id|base64 }}", "c3JjLTE="),
        ("{{ operation|upper }}", "CREATE"),
        ("{{ ticket.priority|default:'high'|map:'queues' }}", "Q-FAST"),
        ("{{ ticket.title|map:'queues' }}", "Printer on fire"),
        ("{{ ticket.nothing|upper|lower|json|first }}", '""'),
    ],
)
def test_filters(template, expected):
    assert render(template, CONTEXT) == expected


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ("{{ ticket.title", "never closed"),
        ("{{ ticket.title | }}", "after the name"),
        ("{{ ticket.title|date }}", "needs an argument"),
        ("{{ ticket.title|upper:'x' }}", "takes no argument"),
        ("{{ ticket.title|shout }}", "'shout' is not a filter"),
        ("{{ tiket.title }}", "unknown name"),
        ("{{ ticket.titel }}", "is not known"),
        ("{{ ticket.title.first }}", "has no fields"),
        ("{{ ticket }}", "needs a field"),
        ("{{ secrets.token }}", "only inside 'auth'"),
        ("{{ reply.text }}", "only in the reply request"),
        ("{{ '__import__' }}", "must start with a name"),
        ("{{ ticket.title|default:x }}", "quoted text or a whole number"),
    ],
)
def test_what_cannot_work_is_a_sentence_naming_it(template, words):
    problems = check({"body": template}, {"ticket", "settings"}, "body")
    assert len(problems) == 1 and words in problems[0], problems


def test_deeper_paths_are_allowed_only_where_they_exist():
    roots = {"ticket", "settings", "tickets"}
    assert check("{{ ticket.extra.a.b }} {{ ticket.tags.0 }} {{ settings.x.y }}", roots, "p") == []
    assert check("{{ tickets.remote_ids|join:',' }}", roots, "p") == []


def test_parse_reads_filters_and_arguments():
    expression = parse_expression(" ticket.due_at | date:'%d/%m' | default:0 ")
    assert expression.root == "ticket" and expression.path == ("due_at",)
    assert expression.filters == (("date", "%d/%m"), ("default", 0))
    with pytest.raises(TemplateError):
        parse_expression("ticket.title; rm -rf /")


def test_rendering_a_root_the_request_does_not_have_is_refused():
    with pytest.raises(TemplateError, match="cannot be used in this request"):
        render("{{ secrets.token }}", CONTEXT)


ANSWER = {"data": [{"id": 7, "a/b": "slash"}], "ok": True, "empty": "", "Ticket Id": "T-1"}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("data.0.id", 7),
        ("data.-1.id", 7),
        ("/data/0/a~1b", "slash"),
        ("$", ANSWER),
        ("Ticket Id", "T-1"),
        ("data.1.id", MISSING),
        ("ok.deeper", MISSING),
    ],
)
def test_response_paths(path, expected):
    assert resolve(ANSWER, path) == expected


def test_the_first_non_empty_path_wins():
    assert first_value(ANSWER, ["empty", "nothing", "data.0.id"]) == 7
    assert first_value(ANSWER, "empty") is None
