"""Both ways to run: the embedded default needs nothing, production mode is hardened."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CONSOLE_", "DATABASE_"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_mode_passes_the_deploy_check(tmp_path):
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env={
            "CONSOLE_PRODUCTION": "1",
            "CONSOLE_STATE_DIR": str(tmp_path),
            "DJANGO_SECRET_KEY": Fernet.generate_key().decode() * 2,
            "CONSOLE_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "DJANGO_ALLOWED_HOSTS": "console.example.com",
        },
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def test_production_mode_refuses_to_start_without_keys(tmp_path):
    result = manage("check", env={"CONSOLE_PRODUCTION": "1", "CONSOLE_STATE_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr  # one line that says what to set
    assert not (tmp_path / "encryption.keys").exists()  # production never invents a key


def test_the_embedded_default_generates_its_keys_once_into_the_state_dir(tmp_path):
    env = {"CONSOLE_STATE_DIR": str(tmp_path)}
    assert manage("check", env=env).returncode == 0
    keys = (tmp_path / "encryption.keys").read_text()
    assert oct((tmp_path / "encryption.keys").stat().st_mode & 0o777) == "0o600"
    assert manage("check", env=env).returncode == 0
    assert (tmp_path / "encryption.keys").read_text() == keys


@pytest.mark.django_db
def test_the_database_is_set_up_for_web_worker_and_beat_writing_at_once():
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode")
            assert cursor.fetchone()[0] == "wal"
        assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
        assert connection.settings_dict["OPTIONS"]["timeout"] >= 10
    else:
        assert connection.vendor == "postgresql"
        assert connection.settings_dict["CONN_HEALTH_CHECKS"] is True
