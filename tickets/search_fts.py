"""SQLite's ticket search index: an FTS5 table with the `trigram` tokenizer over the searched
columns, kept in step with `tickets_ticket` by triggers (migration 0011 builds it).

The index only narrows: a query of 3 characters or more first takes the tickets whose columns
contain it as FTS5 finds them (`id IN (SELECT rowid ... MATCH '"query"')`), then the ordinary
`LIKE` lookups decide. The trigram tokenizer folds case for all of Unicode and `LIKE` only for
ASCII, so the index finds a superset and the answers are exactly the `LIKE` answers, only read
through the index instead of the whole table. A shorter query has no trigram and reads the table.

Django's SQLite schema editor rebuilds a table (create, copy, drop, rename) for many column
changes, and dropping the old table drops its triggers. `repair_after_migrate` (a post_migrate
receiver) puts them back and rebuilds the index whenever they are missing.
"""

from __future__ import annotations

import contextlib

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Q
from django.db.models.expressions import RawSQL

from tickets.references import PREFIX as REFERENCE_PREFIX

TABLE = "ticket_search"
CONTENT_TABLE = "tickets_ticket"
#: Every column a search compares (exact or substring) but the reference: the index must cover
#: them to find a superset of the matches. The reference is only ever matched whole, and
#: references are upper-case ASCII (a constant prefix and digits), so its unique index answers it
#: (`narrowing`); in the trigram index every reference shared the prefix's and the zero padding's
#: trigrams, whose doclists are as long as the table (migration 0014 took it out).
COLUMNS = ("remote_id", "remote_number", "title", "requester_email", "requester_name")
#: The columns migrations 0011-0013 indexed (0014's way back).
COLUMNS_BEFORE_0014 = ("reference", *COLUMNS)
MIN_LENGTH = 3  # the tokenizer's trigrams: a shorter query matches nothing in the index
TRIGGERS = {
    "ticket_search_insert": "AFTER INSERT ON {content} BEGIN {add_new}; END",
    "ticket_search_delete": "AFTER DELETE ON {content} BEGIN {remove_old}; END",
    # Only updates of the searched columns touch the index (sync-state updates do not).
    "ticket_search_update": "AFTER UPDATE OF {columns} ON {content} BEGIN {remove_old}; {add_new}; END",
}
CACHE_ATTRIBUTE = "ticket_search_fts"  # on the connection wrapper: (database connection, index there?)


def _columns(columns: tuple[str, ...], prefix: str = "") -> str:
    return ", ".join(f"{prefix}{column}" for column in columns)


def _trigger_sql(name: str, columns: tuple[str, ...]) -> str:
    # Constant names only (this module's), no user input: S608 does not apply here and below.
    listed = _columns(columns)
    add_new = f"INSERT INTO {TABLE}(rowid, {listed}) VALUES (new.id, {_columns(columns, 'new.')})"  # noqa: S608
    remove_old = (
        f"INSERT INTO {TABLE}({TABLE}, rowid, {listed}) "  # noqa: S608
        f"VALUES ('delete', old.id, {_columns(columns, 'old.')})"
    )
    body = TRIGGERS[name].format(
        content=CONTENT_TABLE, columns=listed, add_new=add_new, remove_old=remove_old
    )
    return f"CREATE TRIGGER IF NOT EXISTS {name} {body}"


def trigram_supported(connection: BaseDatabaseWrapper) -> bool:
    """Whether this SQLite has FTS5 and its trigram tokenizer (3.34+, FTS5 compiled in)."""
    if connection.vendor != "sqlite":
        return False
    with connection.cursor() as cursor:
        try:
            cursor.execute(
                "CREATE VIRTUAL TABLE temp.ticket_search_probe USING fts5(probe, tokenize='trigram')"
            )
        except Exception:  # noqa: BLE001 - "no such module: fts5" or "no such tokenizer: trigram"
            return False
        cursor.execute("DROP TABLE temp.ticket_search_probe")
    return True


def create(connection: BaseDatabaseWrapper, columns: tuple[str, ...] = COLUMNS) -> None:
    """Build the index of `columns` from the tickets already there, and the triggers (SQLite
    with trigram support only; elsewhere nothing)."""
    forget(connection)
    if not trigram_supported(connection):
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {TABLE} USING fts5({_columns(columns)}, "
            f"content='{CONTENT_TABLE}', content_rowid='id', tokenize='trigram')"
        )
        for name in TRIGGERS:
            cursor.execute(_trigger_sql(name, columns))
        cursor.execute(f"INSERT INTO {TABLE}({TABLE}) VALUES ('rebuild')")  # noqa: S608


def drop(connection: BaseDatabaseWrapper) -> None:
    forget(connection)
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        for name in TRIGGERS:
            cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
        cursor.execute(f"DROP TABLE IF EXISTS {TABLE}")


def forget(connection: BaseDatabaseWrapper) -> None:
    # delattr, not the instance dict: `django.db.connection` is a proxy that forwards it.
    with contextlib.suppress(AttributeError):
        delattr(connection, CACHE_ATTRIBUTE)


def _names(connection: BaseDatabaseWrapper, kind: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE type = %s", [kind])
        return {row[0] for row in cursor.fetchall()}


def in_use(connection: BaseDatabaseWrapper) -> bool:
    """Whether searches on this connection go through the index: looked up once per database
    connection (a new one, e.g. to another file, looks again)."""
    if connection.vendor != "sqlite":
        return False
    connection.ensure_connection()
    opened, there = getattr(connection, CACHE_ATTRIBUTE, (None, False))
    if opened is not connection.connection:
        there = TABLE in _names(connection, "table")
        setattr(connection, CACHE_ATTRIBUTE, (connection.connection, there))
    return there


def narrowing(query: str, connection: BaseDatabaseWrapper) -> Q | None:
    """The tickets the index says contain `query` somewhere in the searched columns, or None
    when the index cannot answer (not SQLite, no index, a query under 3 characters or with a NUL)."""
    if len(query) < MIN_LENGTH or "\x00" in query or not in_use(connection):
        return None  # FTS5's query parser stops at a NUL: LIKE alone answers such a query
    phrase = '"' + query.replace('"', '""') + '"'  # one FTS5 string: every character literal
    # The query is a parameter; the table name a constant.
    indexed = Q(pk__in=RawSQL(f"SELECT rowid FROM {TABLE} WHERE {TABLE} MATCH %s", [phrase]))  # noqa: S608, S611
    if query.upper().startswith(REFERENCE_PREFIX):
        # The reference, not in the index, is compared whole through its unique index: `iexact`
        # on an upper-case ASCII reference can only match the query upper-cased. (Asked only
        # when it could match: the OR costs the other searches a second index.)
        indexed |= Q(reference=query.upper())
    return indexed


def repair_after_migrate(using: str = "default", **kwargs) -> None:
    """Put back the triggers that a table rebuild dropped, and rebuild the index they missed."""
    from django.db import connections

    connection = connections[using]
    forget(connection)
    if connection.vendor != "sqlite" or TABLE not in _names(connection, "table"):
        return
    if set(TRIGGERS) <= _names(connection, "trigger"):
        return
    create(connection)
