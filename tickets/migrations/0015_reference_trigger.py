"""The database assigns a ticket's reference inside the INSERT (tickets/references.py): a
trigger on PostgreSQL and on SQLite, so a create is one statement. Tickets that have none yet
get theirs."""

from django.db import migrations

from tickets import references


def create_trigger(apps, schema_editor) -> None:
    references.create_trigger(schema_editor.connection)


def drop_trigger(apps, schema_editor) -> None:
    references.drop_trigger(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [
        ("tickets", "0014_search_index_without_reference"),
    ]

    operations = [
        migrations.RunPython(create_trigger, drop_trigger),
    ]
