"""`manage.py purge_old_records [--dry-run]`: delete what is past its retention, as beat does daily."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from tickets import retention

LABELS = {
    "sync_attempts": ("sync attempt(s)", "started more than {days} days ago"),
    "inbound_events": ("inbound event(s)", "received more than {days} days ago"),
    "bulk_jobs": ("bulk job(s)", "finished more than {days} days ago"),
}


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
        for kind, count in counts.items():
            setting = retention.RETENTION_SETTINGS[kind]
            days = getattr(settings, setting)
            noun, which = LABELS[kind]
            if days <= 0:
                self.stdout.write(f"Kept forever ({setting}={days}): {noun}.")
            else:
                self.stdout.write(f"{verb} {count} {noun}: {which.format(days=days)}.")
