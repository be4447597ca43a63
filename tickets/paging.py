"""Paginators whose count does not grow with the table: the staff list and the admin share them.

An unfiltered list of a big PostgreSQL table takes the planner's row estimate; a filtered or
searched list counts at most `TICKET_LIST_COUNT_CAP` + 1 matching rows (a LIMITed subquery,
`SELECT COUNT(*) FROM (SELECT ... LIMIT cap + 1)`), so the pager can say "more than 1,000"
instead of reading every match. Either way the count is one query.
"""

from __future__ import annotations

from django.conf import settings
from django.core.paginator import Paginator
from django.db import connections
from django.utils.functional import cached_property


def count_cap() -> int:
    return int(getattr(settings, "TICKET_LIST_COUNT_CAP", 1_000))


class EstimatedCountPaginator(Paginator):
    """Counts that stay cheap at any size. `count_is_capped` says the true number is larger
    than `count` (a template then shows "more than {{ count }}")."""

    ESTIMATE_ABOVE = 50_000

    @cached_property
    def count_is_capped(self) -> bool:
        return self._counted[1]

    @cached_property
    def count(self) -> int:
        return self._counted[0]

    @cached_property
    def _counted(self) -> tuple[int, bool]:
        queryset = self.object_list
        connection = connections[queryset.db]
        if not queryset.query.where:
            if connection.vendor == "postgresql":
                return self._estimated(queryset, connection), False
            return queryset.count(), False
        cap = count_cap()
        # A sliced queryset counts in a LIMITed subquery: at most cap + 1 rows are read.
        found = queryset.order_by()[: cap + 1].count()
        return (cap, True) if found > cap else (found, False)

    def _estimated(self, queryset, connection) -> int:
        table = connection.ops.quote_name(queryset.model._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT CASE WHEN reltuples > %s THEN reltuples::bigint "  # noqa: S608 - a quoted table name
                f"ELSE (SELECT COUNT(*) FROM {table}) END FROM pg_class WHERE oid = %s::regclass",
                [self.ESTIMATE_ABOVE, queryset.model._meta.db_table],
            )
            return int(cursor.fetchone()[0])
