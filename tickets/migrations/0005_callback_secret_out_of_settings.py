"""The callback secret leaves the account's plain settings for its encrypted field.

Before, `settings["callback_secret"]` held it and `settings["callback_address"]` the full URL
with it, which the create form pre-filled and so copied into tickets' `extra`. Both keys go
(the address only when it carries the secret), the secret is stored encrypted, and a ticket's
`extra["callback_address"]` that carries it goes too: Knight tickets then get the address
built when they are sent. A Knight account with a `callback_base_url` and no secret yet gets
one, as saving it would give it now.
"""

import secrets

from django.db import migrations
from django.utils import timezone

BATCH = 2000


def move_callback_secrets(apps, schema_editor):
    ProviderAccount = apps.get_model("providers", "ProviderAccount")
    Ticket = apps.get_model("tickets", "Ticket")
    now = timezone.now()
    for account in ProviderAccount.objects.order_by("pk"):
        settings = dict(account.settings or {})
        secret = str(settings.pop("callback_secret", "") or "")
        if not secret:
            if account.kind == "knight" and settings.get("callback_base_url"):
                account.callback_secrets = {"current": secrets.token_urlsafe(32)}
                account.callback_secret_set_at = now
                account.save(update_fields=["callback_secrets", "callback_secret_set_at"])
            continue
        if secret in str(settings.get("callback_address") or ""):
            settings.pop("callback_address")
        account.settings = settings
        account.callback_secrets = {"current": secret}
        account.callback_secret_set_at = now
        account.save(update_fields=["settings", "callback_secrets", "callback_secret_set_at"])
        tickets = Ticket.objects.filter(account_id=account.pk).only("pk", "extra").order_by("pk")
        for ticket in tickets.iterator(chunk_size=BATCH):
            extra = dict(ticket.extra or {})
            if secret in str(extra.get("callback_address") or ""):
                extra.pop("callback_address")
                ticket.extra = extra
                ticket.save(update_fields=["extra"])


def restore_plain_callback_secrets(apps, schema_editor):
    """Back to what the code before this migration reads: the secret and, with a base URL,
    the full address in plain settings (tickets fall back to the account's address)."""
    ProviderAccount = apps.get_model("providers", "ProviderAccount")
    for account in ProviderAccount.objects.exclude(callback_secret_set_at=None).order_by("pk"):
        secret = str(account.callback_secrets.reveal().get("current") or "")
        if not secret:
            continue
        settings = dict(account.settings or {}, callback_secret=secret)
        base_url = str(settings.get("callback_base_url") or "").rstrip("/")
        if base_url:
            settings["callback_address"] = f"{base_url}/inbound/{account.kind}/{account.pk}/{secret}/"
        account.settings = settings
        account.save(update_fields=["settings"])


class Migration(migrations.Migration):

    dependencies = [
        ("providers", "0004_callback_secrets"),
        ("tickets", "0004_ticket_settle_until"),
    ]

    operations = [
        migrations.RunPython(move_callback_secrets, restore_plain_callback_secrets),
    ]
