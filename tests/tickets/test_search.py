"""Ticket search and list counts that scale (tickets/search.py, tickets/paging.py, migrations
0009 and 0011): the same answers on SQLite and PostgreSQL, exact matches first, a capped count said in
words, and never a ticket the user may not see."""

from __future__ import annotations

import pytest
from django.db import connection
from django.urls import reverse

from tests.tickets.test_views import make_agent
from tickets import views
from tickets.models import Ticket
from tickets.search import text_match

pytestmark = pytest.mark.django_db


def add_ticket(account, **fields) -> Ticket:
    ticket = Ticket(account=account, **{"title": "Printer jam", "requester_email": "tim@acme.test", **fields})
    ticket.save()  # assigns the reference
    return ticket


def listed_titles(client, query: dict) -> list[str]:
    return [ticket.title for ticket in client.get(reverse("tickets:list"), query).context["page"]]


@pytest.fixture
def desk(account_factory):
    return account_factory("kapture", name="Open desk")


def test_staff_search_finds_by_reference_remote_id_remote_number_and_title(client, desk):
    client.force_login(make_agent())
    printer = add_ticket(desk, title="Printer jam on floor 3")
    add_ticket(desk, title="VPN down in Leeds", remote_id="abc-991", remote_number="KC-4410")
    add_ticket(desk, title="Mail bounces", requester_email="ops@example.org")
    assert listed_titles(client, {"q": printer.reference.lower()}) == ["Printer jam on floor 3"]
    assert listed_titles(client, {"q": "ABC-991"}) == ["VPN down in Leeds"]
    assert listed_titles(client, {"q": "kc-4410"}) == ["VPN down in Leeds"]
    assert listed_titles(client, {"q": "down in"}) == ["VPN down in Leeds"]
    assert listed_titles(client, {"q": "EXAMPLE.org"}) == ["Mail bounces"]
    assert listed_titles(client, {"q": "nothing like this"}) == []


def test_an_exact_match_comes_before_newer_text_matches(client, desk):
    client.force_login(make_agent())
    original = add_ticket(desk, title="Printer jam")
    add_ticket(desk, title=f"Follow-up to {original.reference}")  # newer: listed first otherwise
    assert listed_titles(client, {"q": original.reference}) == [
        "Printer jam",
        f"Follow-up to {original.reference}",
    ]
    assert listed_titles(client, {}) == [f"Follow-up to {original.reference}", "Printer jam"]


def test_admin_search_finds_by_reference_remote_id_and_title(admin_client, desk):
    printer = add_ticket(desk, title="Printer jam on floor 3")
    add_ticket(desk, title="VPN down in Leeds", remote_id="abc-991")
    url = reverse("admin:tickets_ticket_changelist")

    def found(term: str) -> list[str]:
        return [ticket.title for ticket in admin_client.get(url, {"q": term}).context["cl"].result_list]

    assert found(printer.reference) == ["Printer jam on floor 3"]
    assert found("abc-991") == ["VPN down in Leeds"]
    assert found("floor 3") == ["Printer jam on floor 3"]


def admin_titles(client, query: dict) -> list[str]:
    response = client.get(reverse("admin:tickets_ticket_changelist"), query)
    return [ticket.title for ticket in response.context["cl"].result_list]


def test_the_admin_lists_exact_matches_first_unless_a_column_sort_is_chosen(admin_client, desk):
    original = add_ticket(desk, title="Printer jam", remote_number="KC-12")
    add_ticket(desk, title=f"Follow-up to {original.reference}")  # newer: listed first otherwise
    add_ticket(desk, title="Mentions kc-12 too")
    assert admin_titles(admin_client, {"q": original.reference}) == [
        "Printer jam",
        f"Follow-up to {original.reference}",
    ]
    assert admin_titles(admin_client, {"q": "kc-12"}) == ["Printer jam", "Mentions kc-12 too"]
    assert admin_titles(admin_client, {"q": "kc-12 printer"}) == ["Printer jam"]  # every word must match
    # Sorted by title (list_display's second column), A to Z: the user's order wins.
    assert admin_titles(admin_client, {"q": "kc-12", "o": "2"}) == ["Mentions kc-12 too", "Printer jam"]
    assert admin_titles(admin_client, {}) == [
        "Mentions kc-12 too",
        f"Follow-up to {original.reference}",
        "Printer jam",
    ]


def test_a_whole_email_address_finds_that_requester_only_and_a_part_finds_all(client, admin_client, desk):
    client.force_login(make_agent())
    add_ticket(desk, title="Tim's printer", requester_email="tim@acme.test")
    add_ticket(desk, title="Another Tim", requester_email="xtim@acme.test")
    add_ticket(desk, title="Tim abroad", requester_email="tim@acme.test.uk")
    staff = lambda q: sorted(listed_titles(client, {"q": q}))  # noqa: E731
    admin = lambda q: sorted(admin_titles(admin_client, {"q": q}))  # noqa: E731
    for titles in (staff, admin):
        assert titles("TIM@acme.test") == ["Tim's printer"]
        assert titles("tim@acme") == ["Another Tim", "Tim abroad", "Tim's printer"]
        assert titles("acme.test.uk") == ["Tim abroad"]
        # Shaped like a whole address (name@domain.tld), so compared whole: no one is tim@acme.te.
        assert titles("tim@acme.te") == []


def test_a_nul_in_the_admin_search_box_is_dropped(admin_client, desk):
    add_ticket(desk, title="Printer jam")
    assert admin_titles(admin_client, {"q": "prin\x00ter"}) == ["Printer jam"]
    assert admin_titles(admin_client, {"q": "\x00"}) == ["Printer jam"]  # nothing left to search for


def test_search_never_reveals_a_ticket_of_an_account_restricted_to_other_groups(
    client, admin_client, account_factory
):
    vip = account_factory("kapture", name="VIP desk", settings={"allowed_groups": ["vip"]})
    secret = add_ticket(vip, title="VIP printer", remote_id="vip-1")
    outsider = make_agent("outsider", groups=("support",), staff=True)
    client.force_login(outsider)
    for term in (secret.reference, "vip-1", "printer"):
        assert listed_titles(client, {"q": term}) == []
    client.force_login(make_agent("insider", groups=("vip",)))
    assert listed_titles(client, {"q": secret.reference}) == ["VIP printer"]


def test_the_staff_list_says_more_than_n_when_it_stops_counting(client, desk, settings, monkeypatch):
    settings.TICKET_LIST_COUNT_CAP = 3
    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    client.force_login(make_agent())
    for number in range(5):
        add_ticket(desk, title=f"Bulk {number}")
    searched = client.get(reverse("tickets:list"), {"q": "bulk"}).content.decode()
    assert "More than 3 tickets" in searched and "Page 1 of more than 2" in searched
    few = client.get(reverse("tickets:list"), {"q": "bulk 4"}).content.decode()
    assert "1 ticket." in few and "More than" not in few


def test_the_admin_list_says_more_than_n_when_it_stops_counting(admin_client, desk, settings):
    settings.TICKET_LIST_COUNT_CAP = 3
    for number in range(5):
        add_ticket(desk, title=f"Bulk {number}")
    url = reverse("admin:tickets_ticket_changelist")
    capped = admin_client.get(url, {"q": "bulk"}).content.decode()
    assert "More than 3 tickets" in capped and "Select all of more than 3 tickets" in capped
    assert "More than" not in admin_client.get(url, {"q": "bulk 4"}).content.decode()


def test_the_search_indexes_serve_the_lookups_on_postgresql_and_sqlite_has_none_of_them(desk):
    """On PostgreSQL the planner answers the title substring, the reference and the e-mail (whole:
    B-tree; part: trigram) with the indexes of migrations 0009 and 0011 (only index conditions
    allowed: the test table is tiny); on SQLite none of them exist (SQLite's FTS5 index:
    test_search_fts.py)."""
    add_ticket(desk, title="Printer jam on floor 3")
    with connection.cursor() as cursor:
        names = {index for index in connection.introspection.get_constraints(cursor, "tickets_ticket")}
    added = {
        "ticket_title_trgm",
        "ticket_requester_email_trgm",
        "ticket_requester_name_trgm",
        "ticket_reference_upper",
        "ticket_remote_id_upper",
        "ticket_remote_number_upper",
        "ticket_requester_email_upper",
    }
    if connection.vendor != "postgresql":
        assert not added & names
        return
    assert added <= names
    with connection.cursor() as cursor:
        # Only index conditions can answer: no sequential scan, and no plain index scan of
        # another index (e.g. the ordering's, filtering row by row) that a tiny table may favour.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        for queryset, index in (
            (Ticket.objects.filter(title__icontains="floor").order_by(), "ticket_title_trgm"),
            (Ticket.objects.filter(reference__iexact="tc-000001").order_by(), "ticket_reference_upper"),
            (
                Ticket.objects.filter(text_match("TIM@acme.test", ("requester_email",))).order_by(),
                "ticket_requester_email_upper",
            ),
            (
                Ticket.objects.filter(text_match("tim@acme", ("requester_email",))).order_by(),
                "ticket_requester_email_trgm",
            ),
        ):
            sql, params = queryset.query.sql_with_params()
            cursor.execute(f"EXPLAIN {sql}", params)
            assert index in "\n".join(row[0] for row in cursor.fetchall())
