from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from console import crypto
from providers.fields import SealedJSON
from providers.models import ProviderAccount


class Command(BaseCommand):
    help = (
        "Re-encrypt every account's credentials under the newest key "
        "(the first of CONSOLE_ENCRYPTION_KEYS), and their callback secrets with them."
    )

    def handle(self, *args, **options):
        rotated, unreadable = 0, []
        with transaction.atomic():
            for account in ProviderAccount.objects.select_for_update().order_by("pk"):
                # The callback secret is encrypted under the same keys, so it moves with them.
                new_tokens = {}
                for name in ("credentials", "callback_secrets"):
                    sealed = getattr(account, name)
                    if not sealed:
                        continue
                    try:
                        new_tokens[name] = SealedJSON(crypto.rotate(sealed.token))
                    except crypto.CredentialsUnreadable:
                        unreadable.append(account.name)
                        break
                else:
                    if new_tokens:
                        ProviderAccount.objects.filter(pk=account.pk).update(**new_tokens)
                        rotated += "credentials" in new_tokens
            if unreadable:
                # Nothing is half-done: either every account moves to the new key or none.
                raise CommandError(
                    "No credentials were rotated: these accounts cannot be decrypted with any "
                    f"configured key: {', '.join(unreadable)}. Add the key they were written "
                    "with to CONSOLE_ENCRYPTION_KEYS (after the new one) and run this again."
                )
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted the credentials of {rotated} account(s)."))
