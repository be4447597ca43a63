"""Ticket search, shared by the staff list and the admin: exact matches (reference, remote id,
remote number) first, then text matches (title, requester e-mail; the admin adds the name).

The lookups are the ones the indexes serve on PostgreSQL: `iexact` is `UPPER(col) = UPPER(q)`
(B-tree indexes on the UPPER expressions, migrations 0009 and 0011) and `icontains` is
`UPPER(col) LIKE UPPER('%q%')` (pg_trgm GIN indexes on the same expressions). A query that is a
whole e-mail address compares the requester e-mail exactly (`iexact`, the B-tree index): the
trigram index would read the posting lists of `@example.com`-like trigrams that every address
of a domain shares. On SQLite an FTS5 trigram index narrows the rows first (tickets/search_fts.py).
See docs/operations.md ("Search and lists at scale").
"""

from __future__ import annotations

import re

from django.db import connections
from django.db.models import Case, IntegerField, Q, QuerySet, Value, When
from django.utils.text import smart_split, unescape_string_literal

from tickets import search_fts

TEXT_FIELDS = ("title", "requester_email")
# Something@domain.tld with no spaces: what a person pastes when they mean one requester.
EMAIL_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def without_nul(query: str) -> str:
    """The query without NUL characters: no stored text has one (forms refuse it), PostgreSQL
    refuses it in a parameter and FTS5's query parser stops at it."""
    return query.replace("\x00", "")


def is_email_address(query: str) -> bool:
    return EMAIL_ADDRESS.fullmatch(query) is not None


def exact_match(query: str) -> Q:
    return Q(reference__iexact=query) | Q(remote_number__iexact=query) | Q(remote_id__iexact=query)


def text_match(query: str, fields: tuple[str, ...] = TEXT_FIELDS) -> Q:
    match = Q()
    for field in fields:
        exact = field == "requester_email" and is_email_address(query)
        match |= Q(**{f"{field}__{'iexact' if exact else 'icontains'}": query})
    return match


def term_match(query: str, *, using: str, fields: tuple[str, ...] = TEXT_FIELDS) -> Q:
    """Tickets matching `query` exactly or as text, narrowed first by SQLite's FTS5 index when it
    can answer (the LIKE lookups still decide, so the answers are the same with or without it)."""
    match = exact_match(query) | text_match(query, fields)
    narrowed = search_fts.narrowing(query, connections[using])
    return match if narrowed is None else narrowed & match


def exact_first(tickets: QuerySet, *queries: str) -> QuerySet:
    """`tickets` with the exact matches of any of `queries` first, otherwise in their order so far."""
    exact = Q()
    for query in queries:
        exact |= exact_match(query)
    ordering = tickets.query.order_by or tickets.model._meta.ordering
    return tickets.annotate(
        exact_first=Case(When(exact, then=Value(0)), default=Value(1), output_field=IntegerField()),
    ).order_by("exact_first", *ordering)


def search_tickets(tickets: QuerySet, *, query: str) -> QuerySet:
    """The staff list's search: the tickets of `tickets` (already narrowed to what the user may
    see) matching the whole phrase `query`, exact matches first and otherwise in the list's
    usual order."""
    query = without_nul(query)
    return exact_first(tickets.filter(term_match(query, using=tickets.db)), query)


def admin_terms(search_term: str) -> list[str]:
    """The admin's words: split on spaces, a quoted phrase kept whole (as Django's admin does)."""
    terms = []
    for bit in smart_split(without_nul(search_term)):
        if bit.startswith(('"', "'")) and bit[0] == bit[-1]:
            bit = unescape_string_literal(bit)
        if bit:
            terms.append(bit)
    return terms


def admin_search(tickets: QuerySet, search_term: str, *, keep_order: bool = False) -> QuerySet:
    """The admin's search: every word must match (exactly, or as text of the title, e-mail or
    name). Tickets that one of the words matches exactly come first, unless `keep_order` (a
    column sort the user chose)."""
    terms = admin_terms(search_term)
    for term in terms:
        tickets = tickets.filter(term_match(term, using=tickets.db, fields=(*TEXT_FIELDS, "requester_name")))
    return tickets if keep_order or not terms else exact_first(tickets, *terms)
