"""Ticket references ("TC-000123"), assigned by the database inside the INSERT itself.

A reference comes from the primary key, so it is unique and assigned exactly once. The database
sets it in the same statement that inserts the row (a trigger, migration 0015), so a create is
one statement, committed on its own, rather than a transaction of an INSERT and an UPDATE: on
PostgreSQL that was five round trips per create (BEGIN, INSERT, UPDATE, COMMIT and the
dispatcher's look), now two (docs/benchmarks.md, "Create path, one statement"). Every way of
inserting a ticket gets one (a `bulk_create`, a fixture), and a reference given explicitly is
kept.

- PostgreSQL: a BEFORE INSERT row trigger sets `NEW.reference`; the identity default has
  already put the new id in `NEW.id`.
- SQLite: an AFTER INSERT row trigger updates the row, because a BEFORE trigger does not know
  the new rowid yet. It runs inside the INSERT statement, so it is as atomic.

`Ticket.save` formats the same string (`for_pk`) for the saved instance instead of reading it
back. Django's SQLite schema editor rebuilds a table (and drops its triggers) for many column
changes: `repair_after_migrate` puts the trigger back after every migrate and gives a reference
to any row inserted while it was missing.
"""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper

PREFIX = "TC-"
DIGITS = 6  # at least: zero-padded to six, longer once the ids are
TABLE = "tickets_ticket"
TRIGGER = "ticket_reference_from_id"
MIGRATION = ("tickets", "0015_reference_trigger")  # the one that installs it

# The same string as `for_pk`, in each database's SQL, from an id expression.
_SQL_FORMAT = {
    "postgresql": f"'{PREFIX}' || lpad({{id}}::text, greatest({DIGITS}, length({{id}}::text)), '0')",
    "sqlite": f"printf('{PREFIX}%0{DIGITS}d', {{id}})",
}
_CREATE = {
    "postgresql": [
        f"""CREATE OR REPLACE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.reference IS NULL THEN
                NEW.reference := {_SQL_FORMAT["postgresql"].format(id="NEW.id")};
            END IF;
            RETURN NEW;
        END $$""",
        f"DROP TRIGGER IF EXISTS {TRIGGER} ON {TABLE}",
        f"CREATE TRIGGER {TRIGGER} BEFORE INSERT ON {TABLE} FOR EACH ROW EXECUTE FUNCTION {TRIGGER}()",
    ],
    "sqlite": [  # constants only: no value of a row is ever formatted into these
        f"""CREATE TRIGGER IF NOT EXISTS {TRIGGER} AFTER INSERT ON {TABLE}
        FOR EACH ROW WHEN NEW.reference IS NULL BEGIN
            UPDATE {TABLE} SET reference = {_SQL_FORMAT["sqlite"].format(id="NEW.id")} WHERE id = NEW.id;
        END""",  # noqa: S608
    ],
}
_DROP = {
    "postgresql": [f"DROP TRIGGER IF EXISTS {TRIGGER} ON {TABLE}", f"DROP FUNCTION IF EXISTS {TRIGGER}()"],
    "sqlite": [f"DROP TRIGGER IF EXISTS {TRIGGER}"],
}


def for_pk(pk: int) -> str:
    """The reference of the ticket whose primary key is `pk` (what the trigger wrote)."""
    return f"{PREFIX}{pk:0{DIGITS}d}"


def create_trigger(connection: BaseDatabaseWrapper) -> None:
    """Install the trigger, and give a reference to any ticket that has none yet."""
    with connection.cursor() as cursor:
        for statement in _CREATE[connection.vendor]:
            cursor.execute(statement)
        missing = _SQL_FORMAT[connection.vendor].format(id="id")
        cursor.execute(f"UPDATE {TABLE} SET reference = {missing} WHERE reference IS NULL")  # noqa: S608


def drop_trigger(connection: BaseDatabaseWrapper) -> None:
    with connection.cursor() as cursor:
        for statement in _DROP[connection.vendor]:
            cursor.execute(statement)


def trigger_installed(connection: BaseDatabaseWrapper) -> bool:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT 1 FROM pg_trigger WHERE tgname = %s AND tgrelid = %s::regclass", [TRIGGER, TABLE]
            )
        else:
            cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = %s", [TRIGGER])
        return cursor.fetchone() is not None


def repair_after_migrate(using: str = "default", **kwargs) -> None:
    """Put the trigger back when a table rebuild dropped it (SQLite), and catch up the rows
    inserted without it; nothing when the database was migrated back before its migration."""
    from django.db import connections
    from django.db.migrations.recorder import MigrationRecorder

    connection = connections[using]
    if MIGRATION in MigrationRecorder(connection).applied_migrations() and not trigger_installed(connection):
        create_trigger(connection)
