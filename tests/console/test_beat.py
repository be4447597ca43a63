"""Beat is Celery's own scheduler: the schedule comes from settings, its state file lives in
the state directory."""

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_beat_sends_the_settings_schedule_and_keeps_its_file_in_the_state_dir(tmp_path):
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "CONSOLE_", "DATABASE_", "CELERY_"))
    }
    env = {**clean, "CONSOLE_STATE_DIR": str(tmp_path), "SYNC_SWEEP_INTERVAL": "0.5", "PYTHONUNBUFFERED": "1"}
    log_path = tmp_path / "beat.log"
    with open(log_path, "wb") as log:
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "console", "beat", "--loglevel", "INFO"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 90
        while "Sending due task sweep-sync-queue" not in log_path.read_text():
            assert beat.poll() is None, f"beat exited:\n{log_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"beat sent nothing:\n{log_path.read_text()[-3000:]}"
            time.sleep(0.2)
    finally:
        beat.terminate()
        beat.wait(30)
    # shelve may add a suffix (.db, .dat) depending on the dbm module at hand
    assert [p.name for p in tmp_path.glob("celerybeat-schedule*")], list(tmp_path.iterdir())
