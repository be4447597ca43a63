"""./scripts/run as a newcomer meets it: one console at a time, demo credentials never changed
behind anyone's back, and a log that is quiet about expected refusals."""

import io
import logging
import os
import sys

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from console.log_filters import OneLineClientErrors
from providers.demo import ensure_demo_accounts
from providers.models import ProviderAccount
from providers.sandbox.credentials import load_or_create
from tickets.management.commands.runconsole import hold_run_lock


def test_a_second_console_is_refused_with_the_running_ones_pid(tmp_path, settings):
    settings.STATE_DIR = tmp_path
    held = hold_run_lock(tmp_path / "run.lock")
    try:
        with pytest.raises(CommandError, match=rf"already running \(pid {os.getpid()}\)"):
            call_command("runconsole")  # refused before migrating or touching any account
    finally:
        held.close()
    hold_run_lock(tmp_path / "run.lock").close()  # free again once the first one is gone


@pytest.mark.django_db
def test_demo_credentials_are_kept_when_they_match_and_a_reset_is_in_the_history(tmp_path, settings):
    settings.STATE_DIR = tmp_path
    admin = User.objects.create_superuser("admin", "admin@localhost")
    ensure_demo_accounts("http://127.0.0.1:8100", acting_user=admin)
    account = ProviderAccount.objects.get(name="Sandbox Kapture CX")
    stamped = account.credentials_updated_at

    ensure_demo_accounts("http://127.0.0.1:8100", acting_user=admin)  # a restart
    account.refresh_from_db()
    assert account.credentials_updated_at == stamped
    assert not LogEntry.objects.exists()

    account.set_credentials({"token": "changed-by-someone"})
    account.save()
    ensure_demo_accounts("http://127.0.0.1:8100", acting_user=admin)
    account.refresh_from_db()
    assert account.get_credentials() == load_or_create()["kapture"]
    [entry] = LogEntry.objects.all()
    assert (entry.object_id, entry.user) == (str(account.pk), admin)
    assert "credentials" in entry.get_change_message()
    assert "changed-by-someone" not in entry.change_message
    assert load_or_create()["kapture"]["token"] not in entry.change_message


def test_a_refused_request_is_logged_in_one_line():
    try:
        raise PermissionDenied()
    except PermissionDenied:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "django.request",
        logging.WARNING,
        __file__,
        1,
        "Forbidden (Permission denied): %s",
        ("/admin/x/",),
        exc_info,
    )
    record.status_code = 403
    assert OneLineClientErrors().filter(record)
    assert logging.Formatter().format(record) == "Forbidden (Permission denied): /admin/x/"


class PermissionDenied(Exception):
    pass


@pytest.mark.django_db
def test_a_page_refused_to_a_signed_in_user_leaves_one_log_line(client):
    [handler] = [
        h for h in logging.getLogger().handlers if any(isinstance(f, OneLineClientErrors) for f in h.filters)
    ]  # settings.LOGGING's
    written = io.StringIO()
    previous = handler.setStream(written)
    try:
        client.force_login(User.objects.create_user("nobody"))  # signed in, no ticket permission
        assert client.get("/").status_code == 403
    finally:
        handler.setStream(previous)
    assert written.getvalue().count("Forbidden (Permission denied): /") == 1
    assert "Traceback" not in written.getvalue()
    assert not logging.getLogger("django").handlers  # nothing prints it a second time
