import logging

from django.core.management.base import BaseCommand, CommandError

from providers.sandbox.credentials import credentials_path, load_or_create
from providers.sandbox.faults import FAULT_KINDS, OPT_IN_KINDS, FaultPlan
from providers.sandbox.server import SandboxServer, all_emulators


class Command(BaseCommand):
    help = "Serve emulators of all provider APIs on loopback (see docs/sandbox.md)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8100)
        parser.add_argument(
            "--fault-rate", type=float, default=0.0, help="Fraction of calls (0..1) that fail."
        )
        parser.add_argument(
            "--fault-kinds",
            default=",".join(FAULT_KINDS),
            help=f"Comma-separated, from: {', '.join(FAULT_KINDS + OPT_IN_KINDS)}.",
        )
        parser.add_argument("--retry-after", type=float, default=1.0)
        parser.add_argument("--slow-seconds", type=float, default=20.0)
        parser.add_argument("--seed", type=int, default=None)

    def handle(self, *args, **options):
        if not 0 <= options["fault_rate"] <= 1:
            raise CommandError("--fault-rate must be between 0 and 1.")
        try:
            faults = FaultPlan(
                rate=options["fault_rate"],
                kinds=tuple(k.strip() for k in options["fault_kinds"].split(",") if k.strip()),
                retry_after=options["retry_after"],
                slow_seconds=options["slow_seconds"],
                seed=options["seed"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        logging.getLogger("sandbox").setLevel(logging.INFO)
        credentials = load_or_create()
        server = SandboxServer((options["host"], options["port"]), all_emulators(credentials), faults)
        self.stdout.write(f"Sandbox serving on {server.url} (credentials: {credentials_path()})")
        for name in server.emulators:
            self.stdout.write(f"  {name:14} {server.base_url(name)}")
        self.stdout.write(f"  control        {server.url}/_sandbox/faults, /_sandbox/state")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
