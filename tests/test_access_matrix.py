"""Every route × every role, generated from the URL conf: a route without a rule fails.

Each rule says, for the six roles of tests/access_world.py, what the answer must be, as a word:
  ok           200
  login        302 to the staff sign-in page
  admin_login  302 to the admin sign-in page
  index        302 to the admin index (the admin's "does not exist" answer)
  redirect     302 anywhere else (an action done, or refused with a message, on the page it came from)
  missing      404      denied  403      method  405
The expected answers are written out per route rather than derived from the policy, so a change
in what someone may reach shows up here as a diff a reviewer reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.contrib.contenttypes.models import ContentType
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests.access_world import ROLES, World, make_world

ANON, AGENT, OUTSIDE, STAFF_OUT, PROVIDER_ADMIN, SUPERUSER = ROLES


@dataclass(frozen=True)
class Rule:
    #: One word per role, in ROLES order.
    expect: tuple[str, str, str, str, str, str]
    url: Callable[[World], str]
    method: str = "get"
    data: dict = field(default_factory=dict)


def answers(words: str) -> tuple[str, ...]:
    values = tuple(words.split())
    assert len(values) == len(ROLES), words
    return values


def named(name: str, **kwargs: Callable[[World], object]) -> Callable[[World], str]:
    return lambda world: reverse(name, kwargs={key: value(world) for key, value in kwargs.items()})


def eu_ticket(world: World) -> int:
    return world.eu_ticket.pk


def eu_job(world: World) -> int:
    return world.eu_job.pk


# --- the staff UI ---------------------------------------------------------------------------
# Agents outside the EU group meet the EU ticket as a 404, like a ticket that does not exist;
# the provider admin here holds only view_ticket.
TICKET_ACTION = answers("login redirect missing missing denied redirect")
RULES: dict[str, Rule] = {
    "tickets:list": Rule(answers("login ok ok ok ok ok"), named("tickets:list")),
    "tickets:create": Rule(answers("login ok ok ok denied ok"), named("tickets:create")),
    "tickets:sync_states": Rule(
        answers("login ok ok ok ok ok"), lambda w: f"{reverse('tickets:sync_states')}?id={w.eu_ticket.pk}"
    ),
    "tickets:detail": Rule(
        answers("login ok missing missing missing ok"), named("tickets:detail", pk=eu_ticket)
    ),
    "tickets:edit": Rule(answers("login ok missing missing denied ok"), named("tickets:edit", pk=eu_ticket)),
    **{
        f"tickets:{action}": Rule(TICKET_ACTION, named(f"tickets:{action}", pk=eu_ticket), method="post")
        for action in ("status", "retry", "reply", "link", "cancel")
    },
    "login": Rule(answers("ok redirect redirect redirect redirect redirect"), named("login")),
    "logout": Rule(answers("login login login login login login"), named("logout"), method="post"),
    # Probes for load balancers: anyone, no session needed, nothing about accounts in them.
    "healthz": Rule(answers("ok ok ok ok ok ok"), named("healthz")),
    "readyz": Rule(answers("ok ok ok ok ok ok"), named("readyz")),
    # Prometheus authenticates with METRICS_TOKEN, never a session: unset (as here), no one.
    "metrics": Rule(answers("missing missing missing missing missing missing"), named("metrics")),
    # A wrong secret is a 404 for everyone, signed in or not.
    "inbound": Rule(
        answers("missing missing missing missing missing missing"),
        named(
            "inbound",
            route=lambda w: "knight",
            account_id=lambda w: w.eu_account.pk,
            secret=lambda w: "not-the-secret",
        ),
        method="post",
    ),
}

# --- the admin: pages of its own ------------------------------------------------------------
# Agents who are not staff are sent to the admin's sign-in, as anonymous visitors are.
STAFF_ONLY = "admin_login admin_login admin_login"
RULES.update(
    {
        "sync_dashboard": Rule(answers(f"{STAFF_ONLY} ok ok ok"), named("sync_dashboard")),
        "admin:index": Rule(answers(f"{STAFF_ONLY} ok ok ok"), named("admin:index")),
        "admin:login": Rule(answers("ok ok ok index index index"), named("admin:login")),
        # Signing out of the admin ends up on a sign-in page, signed in or not.
        "admin:logout": Rule(
            answers("index index index login login login"), named("admin:logout"), method="post"
        ),
        "admin:password_change": Rule(answers(f"{STAFF_ONLY} ok ok ok"), named("admin:password_change")),
        "admin:password_change_done": Rule(
            answers(f"{STAFF_ONLY} ok ok ok"), named("admin:password_change_done")
        ),
        "admin:autocomplete": Rule(
            answers(f"{STAFF_ONLY} denied denied denied"), named("admin:autocomplete")
        ),
        "admin:jsi18n": Rule(answers(f"{STAFF_ONLY} ok ok ok"), named("admin:jsi18n")),
        # Tickets have no public page: the shortcut finds nothing to redirect to, for anyone.
        "admin:view_on_site": Rule(
            answers(f"{STAFF_ONLY} missing missing missing"),
            named(
                "admin:view_on_site",
                content_type_id=lambda w: ContentType.objects.get_for_model(w.eu_ticket).pk,
                object_id=eu_ticket,
            ),
        ),
        "admin:app_list": Rule(
            answers(f"{STAFF_ONLY} ok ok ok"), named("admin:app_list", app_label=lambda w: "tickets")
        ),
        "admin/(?P<url>.*)$": Rule(
            answers(f"{STAFF_ONLY} missing missing missing"), lambda w: "/admin/no-such-page/"
        ),
        # Bulk jobs belong to whoever started them (here the superuser): others meet a 404.
        "admin:tickets_ticket_bulk_job": Rule(
            answers(f"{STAFF_ONLY} missing denied ok"), named("admin:tickets_ticket_bulk_job", job_id=eu_job)
        ),
        "admin:tickets_ticket_bulk_job_progress": Rule(
            answers(f"{STAFF_ONLY} missing denied ok"),
            named("admin:tickets_ticket_bulk_job_progress", job_id=eu_job),
        ),
        "admin:tickets_ticket_bulk_job_download": Rule(
            answers(f"{STAFF_ONLY} missing denied ok"),
            named("admin:tickets_ticket_bulk_job_download", job_id=eu_job),
        ),
        "admin:tickets_ticket_bulk_job_retry": Rule(
            answers(f"{STAFF_ONLY} missing denied redirect"),
            named("admin:tickets_ticket_bulk_job_retry", job_id=eu_job),
            method="post",
        ),
        **{
            f"admin:providers_provideraccount_{view}": Rule(
                answers(f"{STAFF_ONLY} denied redirect redirect"),
                named(f"admin:providers_provideraccount_{view}", pk=lambda w: w.eu_account.pk),
                method="post",
            )
            for view in ("test", "pause", "resume", "rotate_callback_secret")
        },
        # "Try it" builds (and may send) the account's configured requests with its
        # credentials: provider admins only. The page says so for a kind other than generic.
        "admin:providers_provideraccount_try": Rule(
            answers(f"{STAFF_ONLY} denied ok ok"),
            named("admin:providers_provideraccount_try", pk=lambda w: w.eu_account.pk),
        ),
    }
)


# --- the admin: each registered model's standard pages ----------------------------------------
@dataclass(frozen=True)
class ModelPages:
    """What each role gets on a model's changelist, add, change, history and delete pages (for
    `target`, an object restricted to the EU group where the model has such objects)."""

    target: Callable[[World], object]
    changelist: str
    add: str
    change: str
    history: str
    delete: str


SUPERUSER_ONLY = f"{STAFF_ONLY} denied denied ok"
MODEL_PAGES = {
    "auth_group": ModelPages(lambda w: w.eu_group.pk, *[SUPERUSER_ONLY] * 5),
    "auth_user": ModelPages(lambda w: w.users[AGENT].pk, *[SUPERUSER_ONLY] * 5),
    # Provider admins configure every account, restricted or not: they set the restriction.
    "providers_provideraccount": ModelPages(lambda w: w.eu_account.pk, *[f"{STAFF_ONLY} denied ok ok"] * 5),
    # Staff outside the group: the EU ticket does not exist for them ("index"); the provider
    # admin may view tickets but not add or change them. Nobody deletes a ticket: tickets are
    # cancelled, never deleted (they may exist at the provider).
    "tickets_ticket": ModelPages(
        eu_ticket,
        changelist=f"{STAFF_ONLY} ok ok ok",
        add=f"{STAFF_ONLY} ok denied ok",
        change=f"{STAFF_ONLY} index index ok",
        history=f"{STAFF_ONLY} index index ok",
        delete=f"{STAFF_ONLY} denied denied denied",
    ),
    "tickets_syncattempt": ModelPages(
        lambda w: w.eu_attempt.pk,
        changelist=f"{STAFF_ONLY} ok denied ok",
        add=f"{STAFF_ONLY} denied denied denied",
        change=f"{STAFF_ONLY} index denied ok",
        history=f"{STAFF_ONLY} index index ok",
        delete=f"{STAFF_ONLY} denied denied ok",
    ),
    "tickets_bulkjob": ModelPages(
        eu_job,
        changelist=f"{STAFF_ONLY} ok denied ok",
        add=f"{STAFF_ONLY} denied denied denied",
        change=f"{STAFF_ONLY} index denied ok",
        history=f"{STAFF_ONLY} index index ok",
        delete=f"{STAFF_ONLY} denied denied denied",
    ),
}
THIRD_PARTY_PAGES = {"axes"}  # sign-in attempts (usernames, addresses): superusers only, like auth


def admin_model_rules() -> dict[str, Rule]:
    rules: dict[str, Rule] = {}
    from django.contrib import admin

    for model in admin.site._registry:
        prefix = f"{model._meta.app_label}_{model._meta.model_name}"
        pages = MODEL_PAGES.get(prefix)
        if pages is None and model._meta.app_label in THIRD_PARTY_PAGES:
            # No object of ours to open: an id that does not exist checks who is let in.
            # (the history page asks whether the object exists before it asks who is asking)
            # (sign-in records are written by the sign-in alone: no one adds one by hand)
            pages = ModelPages(
                lambda w: 0,
                SUPERUSER_ONLY,
                f"{STAFF_ONLY} denied denied denied",
                change=f"{STAFF_ONLY} denied denied index",
                history=f"{STAFF_ONLY} index index index",
                delete=f"{STAFF_ONLY} denied denied index",
            )
        if pages is None:
            continue  # no rule: the completeness check names the model's routes
        target = pages.target
        rules[f"admin:{prefix}_changelist"] = Rule(
            answers(pages.changelist), named(f"admin:{prefix}_changelist")
        )
        rules[f"admin:{prefix}_add"] = Rule(answers(pages.add), named(f"admin:{prefix}_add"))
        for view in ("change", "history", "delete"):
            rules[f"admin:{prefix}_{view}"] = Rule(
                answers(getattr(pages, view)), named(f"admin:{prefix}_{view}", object_id=target)
            )
        # admin/<app>/<model>/<id>/ only redirects to the change page, which decides.
        rules[f"admin/{model._meta.app_label}/{model._meta.model_name}/<path:object_id>/"] = Rule(
            answers(f"{STAFF_ONLY} redirect redirect redirect"),
            lambda w, m=model, t=target: f"/admin/{m._meta.app_label}/{m._meta.model_name}/{t(w)}/",
        )
    rules["admin:auth_user_password_change"] = Rule(
        answers(SUPERUSER_ONLY), named("admin:auth_user_password_change", id=lambda w: w.users[AGENT].pk)
    )
    return rules


# --- the test -------------------------------------------------------------------------------
def every_route(patterns=None, prefix: str = "", namespace: str = ""):
    """(key, route) for every URL pattern: the key is its name, or its route when unnamed."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            inner = (
                f"{namespace}:{pattern.namespace}"
                if namespace and pattern.namespace
                else (pattern.namespace or namespace)
            )
            yield from every_route(pattern.url_patterns, prefix + str(pattern.pattern), inner)
        elif isinstance(pattern, URLPattern):
            route = prefix + str(pattern.pattern)
            name = f"{namespace}:{pattern.name}" if namespace else pattern.name
            yield (name if pattern.name else route), route


def classify(response) -> str:
    if response.status_code in (301, 302):
        location = response["Location"]
        if location.startswith("/accounts/login/"):
            return "login"
        if location.startswith("/admin/login/"):
            return "admin_login"
        return "index" if location == "/admin/" else "redirect"
    return {200: "ok", 403: "denied", 404: "missing", 405: "method"}.get(
        response.status_code, str(response.status_code)
    )


@pytest.mark.django_db
def test_every_route_has_a_rule_and_every_role_gets_the_answer_it_should(account_factory):
    world = make_world(account_factory)
    rules = {**RULES, **admin_model_rules()}
    keys = dict(every_route())
    unruled = sorted(key for key in keys if key not in rules)
    stale = sorted(key for key in rules if key not in keys)
    assert not unruled, f"Routes without an access rule (add one in tests/test_access_matrix.py): {unruled}"
    assert not stale, f"Rules for routes that no longer exist: {stale}"

    wrong = []
    for _key, rule in sorted(rules.items()):
        url = rule.url(world)
        for role, expected in zip(ROLES, rule.expect, strict=True):
            response = getattr(world.client(role), rule.method)(url, rule.data)
            got = classify(response)
            if got != expected:
                wrong.append(f"{rule.method.upper()} {url} as {role}: expected {expected}, got {got}")
    assert not wrong, "\n".join(["Answers that differ from the access rules:", *wrong])
