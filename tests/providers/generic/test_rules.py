"""Error rules of a generic configuration (pure)."""

from __future__ import annotations

import pytest

from providers.errors import (
    ProviderAuthError,
    ProviderNotFoundError,
    ProviderRateLimited,
    ProviderTransientError,
    ProviderValidationError,
)
from providers.generic.rules import classify, rule_problems

KAPTURE_RULES = [
    {"when": {"status": [200], "path": "message", "contains": "auth"}, "then": "auth", "message": "message"},
    {"when": {"path": "message", "contains": "no data found"}, "then": "not_found"},
    {
        "when": {"path": "status", "equals": "failed"},
        "then": "validation",
        "field_errors": "errors",
        "field_names": {"subject": "title"},
    },
]


def outcome(status, data, rules=KAPTURE_RULES, headers=None, text="", **kwargs):
    return classify(rules, status=status, data=data, text=text, headers=headers or {}, **kwargs)


def test_the_first_matching_rule_decides_even_on_a_2xx():
    error = outcome(200, {"status": "failed", "message": "Invalid Auth Key"})
    assert isinstance(error, ProviderAuthError) and error.message == "Invalid Auth Key"
    assert isinstance(outcome(200, {"status": "failed", "message": "No Data found"}), ProviderNotFoundError)
    refused = outcome(
        200, {"status": "failed", "message": "bad", "errors": {"subject": ["Too long."], "x": "Odd."}}
    )
    assert isinstance(refused, ProviderValidationError)
    assert refused.field_errors == {"title": ["Too long."], "__all__": ["Odd."]}
    assert outcome(200, {"status": "success"}) is None


def test_without_a_match_failure_statuses_are_classified_as_for_every_provider():
    assert isinstance(outcome(401, {"error": {"message": "Who are you?"}}), ProviderAuthError)
    limited = outcome(429, None, headers={"Retry-After": "7"}, text="slow down")
    assert isinstance(limited, ProviderRateLimited) and limited.retry_after == 7
    assert outcome(503, None).may_have_applied is False
    assert outcome(500, None).may_have_applied is True
    refused = outcome(422, {"detail": "Nope"}, message_paths=["detail"])
    assert isinstance(refused, ProviderValidationError) and refused.message == "Nope"
    assert outcome(400, None, text="plain words").message == "HTTP 400: plain words"


@pytest.mark.parametrize(
    ("when", "data", "matched"),
    [
        ({"path": "ok", "equals": True}, {"ok": True}, True),
        ({"path": "code", "equals": "1"}, {"code": 1}, True),
        ({"path": "code", "in": [2, 3]}, {"code": 3}, True),
        ({"path": "code", "not_equals": 0}, {"code": 1}, True),
        ({"path": "code", "not_equals": 0}, {}, False),
        ({"path": "code", "exists": True}, {"code": None}, False),
        ({"path": "code", "exists": False}, {}, True),
        ({"path": "errors", "contains": "TITLE"}, {"errors": ["the title is missing"]}, True),
        ({"status": [404]}, {}, False),
    ],
)
def test_conditions(when, data, matched):
    rules = [{"when": when, "then": "transient_applied"}]
    error = outcome(200, data, rules=rules)
    assert (isinstance(error, ProviderTransientError) and error.may_have_applied) is matched


def test_success_makes_a_failure_status_a_success():
    assert outcome(404, {"deleted": True}, rules=[{"when": {"status": [404]}, "then": "success"}]) is None


@pytest.mark.parametrize(
    ("rules", "words"),
    [
        ({}, "must be a list"),
        (["x"], "Rule 1: must be an object"),
        ([{"when": {"status": [200]}, "then": "boom"}], "'then' is \"boom\"; it must be one of"),
        ([{"when": {}, "then": "auth"}], "at least one condition"),
        ([{"when": {"status": 200}, "then": "auth"}], "list of HTTP statuses"),
        ([{"when": {"path": "a"}, "then": "auth"}], "exactly one test"),
        ([{"when": {"equals": 1}, "then": "auth"}], "need a 'path'"),
        ([{"when": {"path": "a..b", "exists": True}, "then": "auth"}], "empty part"),
        ([{"when": {"status": [400]}, "then": "auth", "mesage": "m"}], "'mesage' is not a rule key"),
        ([{"when": {"stauts": [400]}, "then": "auth"}], "'stauts' is not a condition"),
    ],
)
def test_rule_problems_are_sentences(rules, words):
    problems = rule_problems(rules)
    assert any(words in problem for problem in problems), problems
