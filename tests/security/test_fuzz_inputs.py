"""Property-based fuzzing of every form and JSON endpoint a person or a provider can reach:
the staff UI (create, edit, the ticket actions, the list filters, sync states) with each of
the five providers' own fields, the provider-account admin form and the inbound callback.

The properties: never a 500; a refused form is shown again with a message on the field and
every typed text kept. Example counts are modest so the whole file stays under a minute; the
"ci" profile (tests/security/conftest.py) draws the same examples every run.
"""

from __future__ import annotations

import json

import pytest
from django import forms
from django.urls import reverse
from django.utils.html import escape
from hypothesis import given, settings
from hypothesis import strategies as st

from providers.registry import EMULATORS, PROVIDERS, get_provider_class
from tests.helpers import callback_path
from tests.providers.test_admin import ADD_URL, account_form
from tickets.models import SyncState, Ticket

pytestmark = pytest.mark.django_db

# Text a browser can send (no lone surrogates: they cannot be encoded as UTF-8 at all).
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=200)
NUMBERS = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "1e-300", "0", "-0", "9" * 5000, "²", "٣"]),
)
DEEP_JSON = st.integers(min_value=30, max_value=5000).map(lambda n: "[" * n + "]" * n)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
).map(json.dumps)
NASTY = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        '=HYPERLINK("http://x")',
        "@SUM(A1)",
        "<script>alert(1)</script>",
        "' OR 1=1 --",
        "{{ 7*7 }}",
        "%s%s%n",
        "\r\n\t",
        "ｆｕｌｌ　ｗｉｄｔｈ",
        "🙂" * 50,
        "a" * 25_000,
        '{"a": NaN}',
        '{"35": {"type": 1, "stringValue": 1e999}}',
        "[" * 3000,
        "2026-02-30T25:61",
    ]
)
HOSTILE = st.one_of(TEXT, NUMBERS, DEEP_JSON, JSON_VALUES, NASTY)

TICKET_FIELDS = (
    "title",
    "description",
    "requester_email",
    "requester_name",
    "priority",
    "impact",
    "status",
    "due_at",
    "tags",
)
TEXT_WIDGETS = (
    forms.TextInput,
    forms.Textarea,
    forms.NumberInput,
    forms.EmailInput,
    forms.URLInput,
    forms.DateTimeInput,
)


def kept_and_explained(response, posted: dict[str, str], *form_names: str, refused=None) -> None:
    """A refused form: a message on a field (shown on the page) and every typed text kept."""
    page = response.content.decode()
    if refused is None:
        refused = [response.context[name] for name in form_names if response.context.get(name) is not None]
    assert any(form.errors for form in refused), "refused without a message"
    for form in refused:
        for name, errors in form.errors.items():
            for error in errors:
                assert escape(error) in page, f"{name}: {error!r} not shown"
        for bound in form:
            typed = posted.get(bound.html_name)
            if typed and isinstance(bound.field.widget, TEXT_WIDGETS):
                shown = str(bound.value())  # what the widget is given back
                assert same_input(bound.field, shown, typed), f"{bound.html_name} not kept"
                assert escape(shown) in page, f"{bound.html_name} not on the page"


def same_input(field: forms.Field, shown: str, typed: str) -> bool:
    """Shown as typed; valid JSON may come back re-written (the same value, other spacing)."""
    if shown == typed:
        return True
    if isinstance(field, forms.JSONField):
        try:
            return json.loads(shown) == json.loads(typed)
        except ValueError:
            return False
    return False


def provider_fields(kind: str) -> list[str]:
    form_class = get_provider_class(kind).extra_form
    return list(form_class.base_fields) if form_class else []


@pytest.fixture
def accounts(account_factory):
    return {kind: account_factory(kind) for kind in EMULATORS}


# --- the staff UI -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", EMULATORS)
def test_the_create_form_never_fails_and_keeps_what_was_typed(agent_client, accounts, kind):
    account = accounts[kind]
    names = [*TICKET_FIELDS, *(f"{kind}-{name}" for name in provider_fields(kind))]

    @settings(max_examples=25)
    @given(st.fixed_dictionaries({}, optional={name: HOSTILE for name in names}))
    def post_create(values):
        posted = {"account": str(account.pk), **values}
        response = agent_client.post(reverse("tickets:create"), posted)
        assert response.status_code in (200, 302), response.status_code
        if response.status_code == 200:
            kept_and_explained(response, posted, "form", "provider_form")

    post_create()


@pytest.mark.parametrize("kind", EMULATORS)
def test_the_edit_form_never_fails_and_keeps_what_was_typed(agent_client, accounts, kind):
    account = accounts[kind]
    ticket = Ticket.objects.create(
        account=account,
        title="Printer jam",
        revision=1,
        synced_revision=1,
        sync_state=SyncState.SYNCED,
        remote_id="R-1",
    )
    names = [*TICKET_FIELDS, *(f"{kind}-{name}" for name in provider_fields(kind))]

    @settings(max_examples=12)
    @given(st.fixed_dictionaries({}, optional={name: HOSTILE for name in names}))
    def post_edit(values):
        Ticket.objects.filter(pk=ticket.pk).update(sync_state=SyncState.SYNCED)  # editable again
        response = agent_client.post(reverse("tickets:edit", args=[ticket.pk]), values)
        assert response.status_code in (200, 302), response.status_code
        if response.status_code == 200:
            kept_and_explained(response, values, "form", "provider_form")

    post_edit()


@settings(max_examples=20)
@given(
    action=st.sampled_from(["status", "reply", "link", "cancel", "retry"]),
    values=st.fixed_dictionaries(
        {},
        optional={
            "status": HOSTILE,
            "body": HOSTILE,
            "remote_id": HOSTILE,
            "remote_number": HOSTILE,
            "remote_url": HOSTILE,
        },
    ),
    state=st.sampled_from([SyncState.SYNCED, SyncState.FAILED, SyncState.NEEDS_ATTENTION]),
)
def test_ticket_actions_never_fail(agent_client, accounts, action, values, state):
    ticket = Ticket.objects.filter(title="Action target").first() or Ticket.objects.create(
        account=accounts["kapture"], title="Action target", revision=1
    )
    Ticket.objects.filter(pk=ticket.pk).update(sync_state=state)
    response = agent_client.post(reverse(f"tickets:{action}", args=[ticket.pk]), values, follow=True)
    assert response.status_code == 200
    assert list(response.context["messages"]), "an action answers with a message"


@settings(max_examples=20)
@given(
    ids=st.lists(HOSTILE, max_size=5),
    filters=st.fixed_dictionaries(
        {},
        optional={
            "q": HOSTILE,
            "account": HOSTILE,
            "status": HOSTILE,
            "priority": HOSTILE,
            "sync_state": HOSTILE,
            "mine": HOSTILE,
            "page": HOSTILE,
        },
    ),
)
def test_the_list_and_sync_states_never_fail(agent_client, accounts, ids, filters):
    assert agent_client.get(reverse("tickets:sync_states"), {"id": ids}).status_code == 200
    assert agent_client.get(reverse("tickets:list"), filters).status_code == 200


# --- the provider-account admin form --------------------------------------------------------------
@settings(max_examples=25)
@given(
    kind=st.sampled_from(sorted(PROVIDERS)),
    values=st.fixed_dictionaries(
        {},
        optional={
            name: HOSTILE
            for name in (
                "name",
                "base_url",
                "rate_limit",
                "timeout",
                "settings",
                "status_map",
                "priority_map",
                "paused_until",
                "cred__kapture__token",
            )
        },
    ),
)
def test_the_account_form_never_fails_and_keeps_what_was_typed(superuser_client, sandbox, kind, values):
    posted = account_form(sandbox, kind=kind, **values)
    response = superuser_client.post(ADD_URL, posted)
    assert response.status_code in (200, 302), response.status_code
    if response.status_code == 200:
        kept_and_explained(response, posted, refused=[response.context["adminform"].form])


@settings(max_examples=25)
@given(
    kind=st.sampled_from(sorted(PROVIDERS)),
    rows=st.one_of(st.integers(min_value=0, max_value=3).map(str), HOSTILE),
    cells=st.lists(st.tuples(HOSTILE, HOSTILE), max_size=3),
)
def test_the_account_tables_never_fail(superuser_client, sandbox, kind, rows, cells):
    posted = account_form(
        sandbox,
        kind=kind,
        settings__tables="1",
        settings__all__rows=rows,
        status_map__tables="1",
        status_map__inbound__rows=rows,
    )
    del posted["settings"], posted["status_map"]
    for index, (key, value) in enumerate(cells):
        for prefix in ("settings__all", "status_map__inbound"):
            posted.update({f"{prefix}__key__{index}": key, f"{prefix}__value__{index}": value})
    response = superuser_client.post(ADD_URL, posted)
    assert response.status_code in (200, 302), response.status_code
    if response.status_code == 200:
        kept_and_explained(response, posted, refused=[response.context["adminform"].form])


# --- the inbound callback -----------------------------------------------------------------------
@settings(max_examples=30)
@given(
    body=st.one_of(st.binary(max_size=2000), HOSTILE.map(str.encode), JSON_VALUES.map(str.encode)),
    payload=st.fixed_dictionaries({"ticketId": HOSTILE, "status": HOSTILE}),
    as_payload=st.booleans(),
    length=st.one_of(st.none(), st.sampled_from(["abc", "-1", "", "9" * 30, "1e3", "²"])),
    chunked=st.booleans(),
)
def test_the_inbound_callback_never_fails(client, accounts, body, payload, as_payload, length, chunked):
    from tickets import services

    account = accounts["knight"]
    secret = services.ensure_callback_secret(account=account)
    data = json.dumps(payload).encode() if as_payload else body
    extra = {}
    if length is not None:
        extra["CONTENT_LENGTH"] = length
    if chunked:
        extra["HTTP_TRANSFER_ENCODING"] = "chunked"
    response = client.post(callback_path(account, secret), data, content_type="application/json", **extra)
    assert response.status_code in (200, 400, 411, 413), response.status_code
