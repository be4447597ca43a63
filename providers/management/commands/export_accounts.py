from pathlib import Path

from django.core.management.base import BaseCommand

from providers.config import dump, export_accounts


class Command(BaseCommand):
    help = (
        "Write every provider account as JSON or YAML (see docs/operations.md). Credentials are "
        "written as environment-variable references with suggested names, never as values."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--format",
            choices=["json", "yaml"],
            default=None,
            help="Default: from --output's extension, else json.",
        )
        parser.add_argument("--output", help="File to write (default: standard output).")

    def handle(self, *args, **options):
        output = options["output"]
        fmt = options["format"] or (
            "yaml" if output and output.lower().endswith((".yaml", ".yml")) else "json"
        )
        text = dump(export_accounts(), fmt)
        if output:
            Path(output).write_text(text, encoding="utf-8")
            self.stderr.write(f"Wrote {output}.")
        else:
            self.stdout.write(text, ending="")
