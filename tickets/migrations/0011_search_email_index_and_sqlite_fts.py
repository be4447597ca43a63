"""The requester e-mail's exact index on PostgreSQL, and SQLite's FTS5 search index.

PostgreSQL: a B-tree index on `UPPER(requester_email)`, what `iexact` compares, so a whole
e-mail address as the search finds its tickets without the trigram index (0009 has the trigram
one). Built CONCURRENTLY, so the migration is not atomic. SQLite: the FTS5 trigram table and
its triggers (tickets/search_fts.py), built only where this SQLite has the trigram tokenizer;
that step runs in a transaction of its own. Each step does nothing on the other database.
"""

from django.db import migrations

from tickets import search_fts

EMAIL_INDEX = "ticket_requester_email_upper"


def create_email_index(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{EMAIL_INDEX}" '
                              'ON "tickets_ticket" (UPPER("requester_email"::text))')


def drop_email_index(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{EMAIL_INDEX}"')


def create_sqlite_index(apps, schema_editor) -> None:
    search_fts.create(schema_editor.connection)  # nothing unless SQLite with the trigram tokenizer


def drop_sqlite_index(apps, schema_editor) -> None:
    search_fts.drop(schema_editor.connection)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("tickets", "0010_syncattempt_sign_in"),
    ]

    operations = [
        migrations.RunPython(create_email_index, drop_email_index),
        migrations.RunPython(create_sqlite_index, drop_sqlite_index, atomic=True),
    ]
