"""`manage.py sync [--account NAME] [--pull] [--wait] [--timeout S]`: push what is due now."""

from __future__ import annotations

import argparse
import time

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count, Q
from django.utils import timezone

from tickets import access, dispatch, pull
from tickets.models import SyncState

BUSY = (SyncState.PENDING, SyncState.SENDING)


class Command(BaseCommand):
    help = (
        "Publish due pending pushes (like the sweeper) for all accounts or one, optionally pull "
        "remote state, and with --wait poll until nothing is pending or sending."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--account", metavar="NAME", help="Only this account (its name).")
        parser.add_argument("--pull", dest="do_pull", action="store_true", help="Also read remote state now.")
        parser.add_argument("--wait", action="store_true", help="Wait until nothing is pending or sending.")
        parser.add_argument("--timeout", type=float, default=300.0, help="Seconds --wait waits (300).")
        parser.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)

    def handle(
        self,
        *args,
        account: str | None,
        do_pull: bool,
        wait: bool,
        timeout: float,
        interval: float,
        **options,
    ) -> None:
        # A shell on the deployment is full trust: the command acts as the policy's operator.
        every_account = access.visible_accounts(access.OPERATOR)
        accounts = every_account
        if account:
            accounts = accounts.filter(name=account)
            if not accounts.exists():
                known = ", ".join(every_account.values_list("name", flat=True)[:20]) or "none"
                raise CommandError(f"No account named '{account}'. Accounts: {known}.")
        tickets = access.visible_tickets(access.OPERATOR).filter(account__in=accounts)
        now = timezone.now()
        due = list(
            tickets.filter(sync_state=SyncState.PENDING)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        dispatch.push_tickets(due)
        self.stdout.write(f"Published {len(due)} due push(es).")
        if do_pull:
            for each in accounts.order_by("name"):
                result = pull.pull_account(account=each)
                if result.skipped:
                    self.stdout.write(f"Not pulled {each.name}: {result.skipped}")
                    continue
                self.stdout.write(
                    f"Pulled {each.name}: {result.fetched} read, {result.applied} applied, "
                    f"{result.conflicts} conflict(s)"
                    + (f", errors: {'; '.join(result.errors[:3])}" if result.errors else "")
                )
        if wait:
            deadline = time.monotonic() + timeout
            while tickets.filter(sync_state__in=BUSY).exists():
                if time.monotonic() > deadline:
                    self.stdout.write(self.counts(tickets))
                    raise CommandError(f"Still pending or sending after {timeout:g} s.")
                time.sleep(interval)
        self.stdout.write(self.counts(tickets))

    @staticmethod
    def counts(tickets) -> str:
        rows = tickets.order_by().values_list("sync_state").annotate(n=Count("pk"))
        by_state = dict(rows.values_list("sync_state", "n"))
        return "Tickets by sync state: " + ", ".join(
            f"{label} {by_state.get(value, 0)}" for value, label in SyncState.choices
        )
