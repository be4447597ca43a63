"""One command for a newcomer: migrate, a first admin, then web + worker/beat (+ sandbox)."""

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from providers.demo import ensure_demo_accounts

ADMIN_USERNAME = "admin"


class Command(BaseCommand):
    help = "Run the whole console locally: web server, Celery worker with beat, and sandbox."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--sandbox-port", type=int, default=8100)
        parser.add_argument("--concurrency", type=int, default=2)
        parser.add_argument("--no-demo", action="store_true",
                            help="Do not start the sandbox nor create demo accounts.")

    def handle(self, *args, **options):
        call_command("migrate", interactive=False, verbosity=0)
        password_note = self.ensure_admin()
        demo = not options["no_demo"]
        sandbox_url = f"http://127.0.0.1:{options['sandbox_port']}"
        if demo:
            names = ensure_demo_accounts(sandbox_url)
            self.stdout.write(f"Demo accounts pointing at the sandbox: {', '.join(names)}")
        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        commands = {
            "web": [*manage, "runserver", f"{options['host']}:{options['port']}", "--noreload"],
            "worker": [
                sys.executable, "-m", "celery", "-A", "console", "worker", "--beat",
                "--loglevel", "INFO", "--concurrency", str(options["concurrency"]),
            ],
        }
        if demo:
            commands["sandbox"] = [*manage, "runsandbox", "--port", str(options["sandbox_port"])]
        self.stdout.write(self.style.SUCCESS(
            f"\nTicket Console: http://{options['host']}:{options['port']}/admin/\n"
            f"  login: {ADMIN_USERNAME} / {password_note}\n"
            "  stop with Ctrl-C\n"
        ))
        self.supervise(commands)

    def ensure_admin(self) -> str:
        User = get_user_model()
        note_file = Path(settings.STATE_DIR) / "first-admin-password.txt"
        if User.objects.filter(username=ADMIN_USERNAME).exists():
            if note_file.is_file():
                return note_file.read_text().strip() + "  (unless you changed it)"
            return "(password set earlier; reset with: manage.py changepassword admin)"
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(ADMIN_USERNAME, "admin@localhost", password)
        note_file.parent.mkdir(parents=True, exist_ok=True)
        note_file.write_text(password + "\n")
        os.chmod(note_file, 0o600)
        return password

    def supervise(self, commands: dict[str, list[str]]) -> None:
        """Run the processes together; when one stops, or on Ctrl-C, stop them all."""
        processes = {name: subprocess.Popen(cmd) for name, cmd in commands.items()}
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exit_code = 0
        while not stopping:
            for name, process in processes.items():
                if process.poll() is not None:
                    self.stderr.write(f"{name} exited with code {process.returncode}; stopping.")
                    exit_code, stopping = process.returncode or 1, True
                    break
            time.sleep(0.5)
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + 15
        for process in processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
        sys.exit(exit_code)
