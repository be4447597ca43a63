"""Browser tests: Playwright drives Debian's Chromium against pytest-django's live server,
with a real Celery worker and the sandbox, so tickets really sync."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User

# Playwright's sync API runs an event loop in the test thread; the test's own ORM calls
# (fixtures, assertions) are ordinary synchronous code all the same.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    # Never `playwright install`: the machine has no internet; Debian's Chromium is used.
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "headless": True,
        "args": [
            "--no-sandbox",
            "--headless",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 900}}


@pytest.fixture
def agent_user(transactional_db) -> User:
    user = User.objects.create_user("agent", "agent@example.com", "agent-pass", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="tickets", codename__in=("view_ticket", "add_ticket", "change_ticket")
        )
    )
    return user


@pytest.fixture
def screenshot_dir(tmp_path) -> Path:
    """docs/screenshots when UPDATE_SCREENSHOTS=1 (to refresh the README's pictures), else a temp dir."""
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return SCREENSHOTS
    return tmp_path
