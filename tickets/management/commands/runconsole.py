"""One command for a newcomer: migrate, a first admin, then web + worker/beat (+ sandbox)."""

import fcntl
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
from django.core.management.base import BaseCommand, CommandError

from providers.demo import ensure_demo_accounts
from providers.egress import allow_in_this_run

ADMIN_USERNAME = "admin"
#: A -W filter (action:message-start) for Celery's "running as superuser" SecurityWarning.
ROOT_WARNING_FILTER = "ignore:You're running the worker with superuser privileges"


class Command(BaseCommand):
    help = "Run the whole console locally: web server, Celery worker with beat, and sandbox."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--sandbox-port", type=int, default=8100)
        parser.add_argument("--concurrency", type=int, default=2)
        parser.add_argument(
            "--no-demo", action="store_true", help="Do not start the sandbox nor create demo accounts."
        )

    def handle(self, *args, **options):
        self.lock = hold_run_lock(Path(settings.STATE_DIR) / "run.lock")
        call_command("migrate", interactive=False, verbosity=0)
        password_note = self.ensure_admin()
        demo = not options["no_demo"]
        sandbox_url = f"http://127.0.0.1:{options['sandbox_port']}"
        if demo:
            # The sandbox is on loopback, which provider calls may not reach unless allow-listed:
            # allow exactly its host:port, here and in the web and worker processes started below.
            allow_in_this_run(f"127.0.0.1:{options['sandbox_port']}")
            admin = get_user_model().objects.filter(username=ADMIN_USERNAME).first()
            names = ensure_demo_accounts(sandbox_url, acting_user=admin)
            self.stdout.write(f"Demo accounts pointing at the sandbox: {', '.join(names)}")
        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        commands = {
            "web": [*manage, "runserver", f"{options['host']}:{options['port']}", "--noreload"],
            # WARNING: at INFO the worker and beat write a line for every sweep and pull
            # (about a dozen a minute while idle); problems are warnings and still show.
            "worker": [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "console",
                "worker",
                "--beat",
                "--loglevel",
                "WARNING",
                "--concurrency",
                str(options["concurrency"]),
            ],
        }
        if demo:
            commands["sandbox"] = [*manage, "runsandbox", "--port", str(options["sandbox_port"])]
        base = f"http://{options['host']}:{options['port']}"
        self.stdout.write(
            self.style.SUCCESS(
                "\nTicket Console is running:\n"
                f"  support agents (tickets):                   {base}/\n"
                f"  admin (provider accounts, bulk jobs, sync): {base}/admin/\n"
                f"  login: {ADMIN_USERNAME} / {password_note}\n"
                "  stop with Ctrl-C\n"
            )
        )
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
        processes = {name: subprocess.Popen(cmd, env=process_env(name)) for name, cmd in commands.items()}
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


def process_env(name: str) -> dict[str, str]:
    env = dict(os.environ)
    if name == "worker" and os.geteuid() == 0:
        # A local try-out as root (containers): Celery warns about it on every start (its
        # C_FORCE_ROOT only lifts the refusal that comes with pickle, not the warning). Only
        # this embedded worker; production runs workers as an ordinary user.
        filters = [f for f in (env.get("PYTHONWARNINGS", ""), ROOT_WARNING_FILTER) if f]
        env["PYTHONWARNINGS"] = ",".join(filters)
    return env


def hold_run_lock(path: Path):
    """Refuse a second console on the same state directory (it would re-run migrations and
    fail on the busy port). The lock goes with the process, however it ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - held open for the life of the process
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        handle.seek(0)
        pid = handle.read().strip() or "unknown"
        handle.close()
        raise CommandError(
            f"The console is already running (pid {pid}); stop it with Ctrl-C in its terminal "
            "first, or open the URLs it printed."
        ) from exc
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
