"""Upgrading moves a callback secret out of plain settings and out of tickets (a real migration)."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from providers.models import ProviderAccount
from tickets.models import Ticket

BEFORE = [("providers", "0003_sync_rate_limit_slot"), ("tickets", "0004_ticket_settle_until")]
AFTER = [("providers", "0004_callback_secrets"), ("tickets", "0005_callback_secret_out_of_settings")]
SECRET = "old-plain-callback-secret-0123456789abcdefghij"


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def migrate_to_latest() -> None:
    """Through AFTER to the newest migrations, so the current models can read the rows."""
    migrate(AFTER)
    executor = MigrationExecutor(connection)
    migrate([node for node in executor.loader.graph.leaf_nodes() if node[0] in ("providers", "tickets")])


@pytest.mark.django_db(transaction=True)
def test_the_plain_secret_moves_into_the_encrypted_field_and_leaves_settings_and_tickets():
    old_apps = migrate(BEFORE)
    try:
        OldAccount = old_apps.get_model("providers", "ProviderAccount")
        OldTicket = old_apps.get_model("tickets", "Ticket")
        base = "https://console.example.com"
        generated = f"{base}/inbound/knight/1/{SECRET}/"
        knight = OldAccount.objects.create(
            pk=1,
            name="Knight",
            kind="knight",
            base_url="https://knight.example",
            settings={
                "environment": "Prod",
                "callback_base_url": base,
                "callback_secret": SECRET,
                "callback_address": generated,
            },
        )
        waiting = OldAccount.objects.create(  # a base URL but no secret yet
            pk=2,
            name="Knight EU",
            kind="knight",
            base_url="https://knight.example",
            settings={"callback_base_url": base},
        )
        copied = OldTicket.objects.create(
            account=knight,
            reference="TC-000001",
            title="a",
            extra={"callback_address": generated, "environment": "Prod"},
        )
        own = OldTicket.objects.create(
            account=knight,
            reference="TC-000002",
            title="b",
            extra={"callback_address": "https://hooks.example/k"},
        )
    finally:
        migrate_to_latest()

    knight = ProviderAccount.objects.get(pk=1)
    assert knight.settings == {"environment": "Prod", "callback_base_url": base}
    assert knight.get_callback_secrets() == {"current": SECRET}  # callbacks keep working
    assert knight.callback_secret_set_at is not None
    assert Ticket.objects.get(pk=copied.pk).extra == {"environment": "Prod"}
    assert Ticket.objects.get(pk=own.pk).extra == {"callback_address": "https://hooks.example/k"}
    waiting = ProviderAccount.objects.get(pk=waiting.pk)
    assert len(waiting.get_callback_secrets()["current"]) >= 40
