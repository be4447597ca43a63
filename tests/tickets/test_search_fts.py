"""SQLite's FTS5 trigram index for ticket search (tickets/search_fts.py, migration 0011): the
answers are exactly the LIKE answers, read through the index for queries of 3+ characters and
kept in step with every insert, update and delete. On PostgreSQL the migration adds no FTS table
and these tests check the same answers without it (its indexes are tested in test_search.py)."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tickets.test_views import make_agent
from tickets import search_fts
from tickets.models import Ticket
from tickets.search import exact_match, search_tickets, text_match

pytestmark = pytest.mark.django_db


def on_sqlite() -> bool:
    """Whether the index should be there: on SQLite, whose build here has the trigram tokenizer
    (Python's bundled SQLite since 3.34); never on PostgreSQL."""
    if connection.vendor != "sqlite":
        return False
    assert search_fts.trigram_supported(connection), "this SQLite lacks FTS5's trigram tokenizer"
    return True


@pytest.fixture
def desk(account_factory):
    return account_factory("kapture", name="Open desk")


def add_ticket(account, **fields) -> Ticket:
    ticket = Ticket(account=account, **{"title": "Printer jam", "requester_email": "tim@acme.test", **fields})
    ticket.save()
    return ticket


def listed_titles(client, query: str) -> list[str]:
    return [ticket.title for ticket in client.get(reverse("tickets:list"), {"q": query}).context["page"]]


def used_the_index(run) -> bool:
    with CaptureQueriesContext(connection) as queries:
        run()
    return any(f"{search_fts.TABLE} MATCH" in query["sql"] for query in queries.captured_queries)


# Characters that tell case folding, LIKE's wildcards and escapes, FTS5's syntax and whitespace
# apart. No NUL (forms refuse it in stored text, and searches drop it: test_search.py) and no lone
# surrogates (not text a request can carry: they have no UTF-8 form).
TRICKY = st.sampled_from(list("aAbBéÉßẞ%_\\\"'*:^-@. ()") + ["TC-", "ı", "İ"])
CHARACTER = st.characters(codec="utf-8", exclude_characters="\x00")
TEXT = st.lists(st.one_of(TRICKY, CHARACTER), max_size=12).map("".join)


def test_index_answers_are_the_like_answers(desk):
    sqlite = on_sqlite()

    @settings(max_examples=150, deadline=None)
    @given(values=st.lists(st.tuples(TEXT, TEXT, TEXT), min_size=1, max_size=5), data=st.data())
    def same_answers(values, data):
        tickets = Ticket.objects.bulk_create(
            [
                Ticket(account=desk, title=title, requester_email=email, remote_id=remote_id, revision=1)
                for title, email, remote_id in values
            ]
        )
        try:
            pieces = [text for row in values for text in row if text]
            some_part = st.sampled_from(pieces).flatmap(
                lambda text: st.tuples(st.integers(0, len(text)), st.integers(0, len(text))).map(
                    lambda ends: text[min(ends) : max(ends)]
                )
            )
            query = data.draw(st.one_of(TEXT, some_part) if pieces else TEXT)
            query = query.strip()  # as the staff form hands it over
            if not query:
                return
            like = Ticket.objects.filter(exact_match(query) | text_match(query))  # no index involved
            by_like = set(like.values_list("pk", flat=True))
            searched = []
            indexed = used_the_index(
                lambda: searched.extend(search_tickets(Ticket.objects.all(), query=query))
            )
            assert {ticket.pk for ticket in searched} == by_like
            assert indexed == (sqlite and len(query) >= search_fts.MIN_LENGTH)
        finally:
            Ticket.objects.filter(pk__in=[ticket.pk for ticket in tickets]).delete()

    same_answers()


def test_index_search_ignores_case_and_short_queries_read_the_table(client, desk):
    sqlite = on_sqlite()
    client.force_login(make_agent())
    add_ticket(desk, title="Printer jam on floor 3", requester_email="Tim.Berners@Acme.test")
    add_ticket(desk, title="VPN down")
    for query in ("PRINTER", "printer JAM", "tim.berners@ACME", "TIM.BERNERS@acme.test"):
        assert used_the_index(lambda q=query: listed_titles(client, q)) == sqlite
        assert listed_titles(client, query) == ["Printer jam on floor 3"]
    assert not used_the_index(lambda: listed_titles(client, "vp"))
    assert listed_titles(client, "vp") == ["VPN down"]


def test_updates_and_deletes_reach_the_index(client, desk):
    client.force_login(make_agent())
    ticket = add_ticket(desk, title="Printer jam")
    assert listed_titles(client, ticket.reference) == ["Printer jam"]  # set by an UPDATE after the insert
    ticket.title = "Scanner offline"
    ticket.save()
    assert listed_titles(client, "printer") == []
    assert listed_titles(client, "scanner") == ["Scanner offline"]
    Ticket.objects.filter(pk=ticket.pk).update(requester_email="new.person@acme.test", remote_number="KC-77")
    assert listed_titles(client, "new.person@acme.test") == ["Scanner offline"]
    assert listed_titles(client, "kc-77") == ["Scanner offline"]
    assert listed_titles(client, "tim@acme") == []
    ticket.delete()
    assert listed_titles(client, "scanner") == []
    if not on_sqlite():
        return
    with connection.cursor() as cursor:  # the index holds nothing for the deleted row
        cursor.execute(
            f"SELECT count(*) FROM {search_fts.TABLE} WHERE {search_fts.TABLE} MATCH %s",  # noqa: S608
            ["scanner"],
        )
        assert cursor.fetchone()[0] == 0


def test_a_reference_is_found_whole_in_any_case_through_its_own_index(client, desk):
    """The reference is not in the trigram index (every reference shares the prefix's trigrams):
    a search compares it whole, through its unique index, as the LIKE lookup would."""
    ticket = add_ticket(desk, title="Printer jam")
    add_ticket(desk, title="VPN down")
    client.force_login(make_agent())
    for query in (ticket.reference, ticket.reference.lower()):
        assert listed_titles(client, query) == ["Printer jam"]
    assert listed_titles(client, ticket.reference[:-1]) == []  # matched whole, not in part
    if not on_sqlite():
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM {search_fts.TABLE} WHERE {search_fts.TABLE} MATCH %s",  # noqa: S608
            [f'"{ticket.reference}"'],
        )
        assert cursor.fetchone()[0] == 0


def search_objects() -> set[str]:
    """The index's table and triggers as the database lists them."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE name LIKE 'ticket_search%'")
        else:
            cursor.execute(
                "SELECT relname FROM pg_class WHERE relname LIKE 'ticket_search%' UNION "
                "SELECT tgname FROM pg_trigger WHERE tgname LIKE 'ticket_search%'"
            )
        return {row[0] for row in cursor.fetchall()}


@pytest.mark.django_db(transaction=True)
def test_the_migration_is_reversible_and_a_search_without_the_index_still_answers(client, desk):
    add_ticket(desk, title="Printer jam")
    client.force_login(make_agent())
    built = {search_fts.TABLE, *search_fts.TRIGGERS}
    sqlite = on_sqlite()
    assert search_objects() & built == (built if sqlite else set())
    try:
        call_command("migrate", "tickets", "0010", verbosity=0)
        assert search_objects() == set()  # the FTS5 shadow tables too
    finally:
        call_command("migrate", "tickets", verbosity=0)
    assert search_objects() & built == (built if sqlite else set())
    # Without the index (as on a SQLite without the trigram tokenizer) a search reads the table
    # and answers the same; built again, the index catches up with what was saved meanwhile.
    search_fts.drop(connection)
    try:
        assert not used_the_index(lambda: listed_titles(client, "printer"))
        assert listed_titles(client, "printer") == ["Printer jam"]
        add_ticket(desk, title="Printer on fire")  # while there is no index
    finally:
        search_fts.create(connection)
    assert used_the_index(lambda: listed_titles(client, "printer")) == sqlite
    assert sorted(listed_titles(client, "printer")) == ["Printer jam", "Printer on fire"]


@pytest.mark.django_db(transaction=True)
def test_triggers_lost_to_a_table_rebuild_come_back_after_migrate(client, desk):
    """Django's SQLite schema editor rebuilds a table (and drops its triggers) for many column
    changes; the next migrate puts them back and catches the index up."""
    client.force_login(make_agent())
    sqlite = on_sqlite()
    with connection.cursor() as cursor:
        for name in search_fts.TRIGGERS if sqlite else ():
            cursor.execute(f"DROP TRIGGER {name}")
    add_ticket(desk, title="Printer jam")  # the index misses it
    call_command("migrate", verbosity=0)
    assert set(search_fts.TRIGGERS) & search_objects() == (set(search_fts.TRIGGERS) if sqlite else set())
    assert listed_titles(client, "printer") == ["Printer jam"]
    add_ticket(desk, title="Printer on fire")
    assert sorted(listed_titles(client, "printer")) == ["Printer jam", "Printer on fire"]
