"""The staff list's ticket search: exact matches (reference, remote id, remote number) first,
then text matches (title, requester e-mail).

The lookups are the ones the indexes of migration 0009 serve on PostgreSQL: `iexact` is
`UPPER(col) = UPPER(q)` (a B-tree index on the UPPER expression) and `icontains` is
`UPPER(col) LIKE UPPER('%q%')` (a pg_trgm GIN index on the same expression). On SQLite both
read the table; see docs/operations.md ("Search at scale").
"""

from __future__ import annotations

from django.db.models import Case, IntegerField, Q, QuerySet, Value, When


def exact_match(query: str) -> Q:
    return Q(reference__iexact=query) | Q(remote_number__iexact=query) | Q(remote_id__iexact=query)


def text_match(query: str) -> Q:
    return Q(title__icontains=query) | Q(requester_email__icontains=query)


def search_tickets(tickets: QuerySet, *, query: str) -> QuerySet:
    """The tickets of `tickets` (already narrowed to what the user may see) matching `query`,
    exact matches first and otherwise in the list's usual order."""
    exact = exact_match(query)
    ordering = tickets.query.order_by or tickets.model._meta.ordering
    return tickets.filter(exact | text_match(query)).annotate(
        exact_first=Case(When(exact, then=Value(0)), default=Value(1), output_field=IntegerField()),
    ).order_by("exact_first", *ordering)
