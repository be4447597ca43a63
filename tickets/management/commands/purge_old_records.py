"""`manage.py purge_old_records [--dry-run]`: delete what is past its retention, as beat does daily."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from tickets import retention


class Command(BaseCommand):
    help = (
        "Delete sync attempts, inbound events and finished bulk jobs older than their retention "
        "(SYNC_ATTEMPT_RETENTION_DAYS, INBOUND_EVENT_RETENTION_DAYS, BULK_JOB_RETENTION_DAYS)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Count what would go; delete nothing.")

    def handle(self, *args, dry_run: bool, **options) -> None:
        counts = retention.purge_old_records(dry_run=dry_run)
        verb = "Would delete" if dry_run else "Deleted"
        for name, count in counts.items():
            kind = retention.KINDS[name]
            days = retention.retention_days(kind)
            if days <= 0:
                self.stdout.write(f"Kept forever ({kind.setting}={days}): {kind.noun}.")
            else:
                self.stdout.write(f"{verb} {count} {kind.noun}: {kind.age.format(days=days)}.")
