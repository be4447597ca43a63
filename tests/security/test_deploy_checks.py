"""Configuration mistakes are named plainly: a bad encryption key (a system check that never
shows the key) and production variables that are missing (a message, not a traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import SystemCheckError

ROOT = Path(__file__).resolve().parents[2]


def run_manage(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    base = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DJANGO_SECRET_KEY", "CONSOLE_ENCRYPTION_KEYS", "CONSOLE_PRODUCTION")
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**base, "CONSOLE_STATE_DIR": str(tmp_path / "var"), **env},
    )


def test_a_key_that_is_not_a_fernet_key_fails_the_check_without_showing_it(settings):
    good = Fernet.generate_key().decode()
    wrong = "not-a-fernet-key-but-a-secret-value-0123456789"
    settings.CONSOLE_ENCRYPTION_KEYS = [good, wrong]
    with pytest.raises(SystemCheckError) as failed:
        call_command("check", "--deploy", "--tag", "security")
    message = str(failed.value)
    assert "console.E002" in message
    assert "CONSOLE_ENCRYPTION_KEYS entry 2 of 2 is not a Fernet key" in message
    assert wrong not in message and good not in message


def test_no_key_at_all_fails_the_check(settings):
    settings.CONSOLE_ENCRYPTION_KEYS = []
    with pytest.raises(SystemCheckError, match=r"console\.E001.*CONSOLE_ENCRYPTION_KEYS is empty"):
        call_command("check", "--tag", "security")


def test_valid_keys_pass_the_check(settings):
    settings.CONSOLE_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), Fernet.generate_key().decode()]
    call_command("check", "--tag", "security")


def test_check_deploy_in_production_without_its_variables_says_which_are_missing(tmp_path):
    result = run_manage(tmp_path, "check", "--deploy", CONSOLE_PRODUCTION="1")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "Configuration error: Production mode (CONSOLE_PRODUCTION=1) needs DJANGO_SECRET_KEY and "
        "CONSOLE_ENCRYPTION_KEYS set in the environment; see 'Credentials and keys' in README.md."
    )
    only_keys = run_manage(tmp_path, "check", "--deploy", CONSOLE_PRODUCTION="1", DJANGO_SECRET_KEY="x" * 60)
    assert "needs CONSOLE_ENCRYPTION_KEYS set" in only_keys.stderr and "Traceback" not in only_keys.stderr


def test_check_deploy_names_a_bad_key_in_production(tmp_path):
    wrong = "short-secret-that-is-no-key"
    result = run_manage(
        tmp_path,
        "check",
        "--deploy",
        CONSOLE_PRODUCTION="1",
        DJANGO_SECRET_KEY="k" * 60,
        CONSOLE_ENCRYPTION_KEYS=wrong,
        DJANGO_ALLOWED_HOSTS="console.example.com",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )
    assert result.returncode == 1
    assert "console.E002" in result.stderr and "entry 1 of 1" in result.stderr
    assert wrong not in result.stderr + result.stdout
