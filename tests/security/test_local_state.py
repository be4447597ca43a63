"""The embedded default's local state (database and its -wal/-shm, broker, keys, media and
exports) is readable by the console's own user only, whatever the umask it was started with."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage

ROOT = Path(__file__).resolve().parents[2]

# Runs in a console process: writes to the database (WAL: -wal and -shm appear while it is
# open), publishes to the embedded broker and saves an export, then lists every mode.
PROBE = """
import json, os
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from console import celery_app
Group.objects.create(name="probe")
with celery_app.connection_for_write() as connection:
    connection.default_channel.basic_publish(
        connection.default_channel.prepare_message("probe"), exchange="", routing_key="probe")
default_storage.save("exports/job-1/tickets-job-1.csv", ContentFile(b"reference"))
modes = {}
for folder, dirs, files in os.walk(os.environ["CONSOLE_STATE_DIR"]):
    for name in dirs + files:
        path = os.path.join(folder, name)
        modes[os.path.relpath(path, os.environ["CONSOLE_STATE_DIR"])] = oct(os.stat(path).st_mode & 0o777)
print("MODES" + json.dumps(modes))
"""


def console(state: Path, *args: str) -> str:
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in (
            "DATABASE_URL",
            "CELERY_BROKER_URL",
            "CONSOLE_ENCRYPTION_KEYS",
            "DJANGO_SECRET_KEY",
            "MEDIA_ROOT",
            "CONSOLE_PRODUCTION",
        )
    }
    env["CONSOLE_STATE_DIR"] = str(state)
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: os.umask(0o022),  # a usual, permissive umask
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_every_file_of_the_embedded_state_is_owner_only(tmp_path):
    state = tmp_path / "var"
    state.mkdir(mode=0o755)
    (state / "left-by-an-older-run.sqlite3").write_text("")
    (state / "left-by-an-older-run.sqlite3").chmod(0o644)
    console(state, "migrate", "-v", "0")
    output = console(state, "shell", "-c", PROBE)
    modes = json.loads(output.split("MODES", 1)[1])

    expected_files = {
        "db.sqlite3",
        "db.sqlite3-wal",
        "db.sqlite3-shm",
        "broker.sqlite3",
        "secret.key",
        "encryption.keys",
        "left-by-an-older-run.sqlite3",
        "media/exports/job-1/tickets-job-1.csv",
    }
    assert expected_files <= set(modes)
    assert oct(stat.S_IMODE(state.stat().st_mode)) == "0o700"
    for name, mode in modes.items():
        expected = "0o700" if (state / name).is_dir() else "0o600"
        assert mode == expected, f"{name} is {mode}"


def test_uploads_and_exports_are_saved_owner_only(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    old_umask = os.umask(0o022)
    try:
        name = FileSystemStorage().save("exports/job-7/part-1.csv", ContentFile(b"TC-1"))
    finally:
        os.umask(old_umask)
    saved = settings.MEDIA_ROOT / name
    assert oct(stat.S_IMODE(saved.stat().st_mode)) == "0o600"
    for folder in (saved.parent, saved.parent.parent):
        assert oct(stat.S_IMODE(folder.stat().st_mode)) == "0o700"
