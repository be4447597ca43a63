from django.core.management.base import BaseCommand, CommandError

from providers.models import ProviderAccount
from tickets.access import OPERATOR, visible_accounts
from tickets.services import test_connection


class Command(BaseCommand):
    help = "Authenticate against an account's provider and report the result and latency."

    def add_arguments(self, parser):
        parser.add_argument("name", help="The provider account's name.")

    def handle(self, *args, **options):
        accounts = visible_accounts(OPERATOR)  # a shell on the deployment is full trust
        try:
            account = accounts.get(name=options["name"])
        except ProviderAccount.DoesNotExist as exc:
            names = ", ".join(accounts.values_list("name", flat=True)) or "none"
            raise CommandError(f"No account named '{options['name']}'. Accounts: {names}.") from exc
        result = test_connection(account=account)
        line = f"{account.name}: {result.message} ({result.latency_ms} ms)"
        if not result.ok:
            raise CommandError(line)
        self.stdout.write(self.style.SUCCESS(line))
