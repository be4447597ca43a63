"""SQLite's FTS5 search index without the reference column (tickets/search_fts.py, COLUMNS).

A search matches the reference only whole, and its unique index answers that; in the trigram
index every reference shared the trigrams of its prefix and zero padding (`TC-`, `000`), whose
doclists are as long as the table, and each create indexed its row twice (the insert, then the
UPDATE that sets the reference). The index and its triggers are rebuilt; nothing happens on
PostgreSQL or where SQLite has no trigram tokenizer.
"""

from django.db import migrations

from tickets import search_fts


def without_reference(apps, schema_editor) -> None:
    search_fts.drop(schema_editor.connection)
    search_fts.create(schema_editor.connection, search_fts.COLUMNS)


def with_reference(apps, schema_editor) -> None:
    search_fts.drop(schema_editor.connection)
    search_fts.create(schema_editor.connection, search_fts.COLUMNS_BEFORE_0014)


class Migration(migrations.Migration):
    dependencies = [
        ("tickets", "0013_lease_renewed_at"),
    ]

    operations = [
        migrations.RunPython(without_reference, with_reference),
    ]
