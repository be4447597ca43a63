"""Indexes that let ticket search scale on PostgreSQL; nothing on SQLite.

Django's `iexact` is `UPPER(col::text) = UPPER(q)` and `icontains` is
`UPPER(col::text) LIKE UPPER('%q%')`, so the indexes are on those expressions: B-tree for the
exact columns, pg_trgm GIN for the substring ones. They live outside the models' Meta (whose
opclass indexes SQLite could not create), so the model state is unchanged. Built
CONCURRENTLY (the migration is not atomic) so writes go on while a big table is indexed.
"""

from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations

EXACT_COLUMNS = ("reference", "remote_id", "remote_number")
TEXT_COLUMNS = ("title", "requester_email", "requester_name")


def create_indexes(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for column in EXACT_COLUMNS:
        schema_editor.execute(
            f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "ticket_{column}_upper" '
            f'ON "tickets_ticket" (UPPER("{column}"::text))'
        )
    for column in TEXT_COLUMNS:
        schema_editor.execute(
            f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "ticket_{column}_trgm" '
            f'ON "tickets_ticket" USING gin (UPPER("{column}"::text) gin_trgm_ops)'
        )


def drop_indexes(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in [f"ticket_{c}_upper" for c in EXACT_COLUMNS] + [f"ticket_{c}_trgm" for c in TEXT_COLUMNS]:
        schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("tickets", "0008_local_only_and_account_problems"),
    ]

    operations = [
        TrigramExtension(),  # a no-op on SQLite (Django's extension operations check the vendor)
        migrations.RunPython(create_indexes, drop_indexes),
    ]
