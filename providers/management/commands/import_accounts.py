from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from providers.config import ConfigError, import_accounts, parse


class Command(BaseCommand):
    help = (
        "Create or update provider accounts from a JSON or YAML file, by account name. "
        "Credentials come from the environment variables the file names. All or nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="The accounts file (.json, .yaml or .yml).")
        parser.add_argument(
            "--user",
            help="Username the admin history records the changes under "
            "(default: the inactive 'config-import' user).",
        )

    def handle(self, *args, **options):
        path = Path(options["file"])
        try:
            text = path.read_bytes()  # decoded by parse(), which explains a non-UTF-8 file
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}.") from exc
        user = None
        if options["user"]:
            try:
                user = get_user_model().objects.get_by_natural_key(options["user"])
            except get_user_model().DoesNotExist as exc:
                raise CommandError(f"No user named '{options['user']}'.") from exc
        try:
            report = import_accounts(parse(text, filename=path.name), user=user)
        except ConfigError as exc:
            lines = "\n".join(f"  - {problem}" for problem in exc.problems)
            raise CommandError(f"Nothing was imported:\n{lines}") from exc
        for name in report.created:
            self.stdout.write(f"created: {name}")
        for name, fields in report.updated.items():
            self.stdout.write(f"updated: {name} ({', '.join(fields)})")
        for name in report.unchanged:
            self.stdout.write(f"unchanged: {name}")
        self.stdout.write(
            self.style.SUCCESS(
                f"{len(report.created)} created, {len(report.updated)} updated, "
                f"{len(report.unchanged)} unchanged."
            )
        )
