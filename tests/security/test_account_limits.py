"""Numbers of a provider account are bounded everywhere they can be written, and the sync
engine refuses (never "sends") with a value that got around the bounds."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.urls import reverse

from providers.errors import ProviderConfigurationError
from providers.models import ProviderAccount
from tests.providers.test_admin import ADD_URL, account_form
from tickets import batch, limits, services, sync
from tickets.models import SyncAttempt, SyncState, Ticket

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("rate_limit", "1e-300", "The rate limit must be 0 (no limit) or a number"),
        ("rate_limit", "-1", "The rate limit must be 0 (no limit) or a number"),
        ("rate_limit", "1e12", "The rate limit must be 0 (no limit) or a number"),
        ("rate_limit", "Infinity", "Enter a number."),
        ("timeout", "0", "The timeout must be a number of seconds from 0.1 to 60."),
        ("timeout", "-5", "The timeout must be a number of seconds from 0.1 to 60."),
        ("timeout", "1e12", "The timeout must be a number of seconds from 0.1 to 60."),
        ("timeout", "NaN", "Enter a number."),
    ],
)
def test_the_admin_form_refuses_a_rate_or_timeout_out_of_range_on_the_field(
    superuser_client, sandbox, field, value, message
):
    response = superuser_client.post(ADD_URL, account_form(sandbox, **{field: value}))
    assert response.status_code == 200
    assert message in response.context["adminform"].form.errors[field][0]
    assert f'value="{value}"' in response.content.decode()  # what was typed stays in the field
    assert not ProviderAccount.objects.exists()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ('{"breaker_cooldown": 1e999}', "Numbers must be finite"),
        ('{"breaker_threshold": 0}', "'breaker_threshold' must be a whole number from 1 to 1000"),
        ('{"breaker_cooldown": -3}', "'breaker_cooldown' must be a number of seconds"),
    ],
)
def test_numeric_engine_settings_are_bounded_in_the_admin_form(superuser_client, sandbox, settings, message):
    response = superuser_client.post(ADD_URL, account_form(sandbox, settings=settings))
    assert response.status_code == 200
    assert any(message in error for error in response.context["adminform"].form.errors["settings"])
    assert not ProviderAccount.objects.exists()


def test_a_numeric_default_of_a_provider_ticket_field_is_checked_like_the_field(superuser_client, sandbox):
    data = account_form(
        sandbox,
        kind="knight",
        base_url=sandbox.base_url("knight"),
        settings=json.dumps({"ticket_priority": 9}),
        cred__kapture__token="",
        **{f"cred__knight__{k}": v for k, v in sandbox.credentials["knight"].items()},
    )
    response = superuser_client.post(ADD_URL, data)
    assert response.status_code == 200
    [error] = response.context["adminform"].form.errors["settings"]
    assert "'ticket_priority'" in error and "1 (highest) to 4 (lowest)" in error


def write_import(tmp_path, sandbox, monkeypatch, **fields) -> str:
    monkeypatch.setenv("KAPTURE_TOKEN", sandbox.credentials["kapture"]["token"])
    account = {
        "name": "Kapture EU",
        "kind": "kapture",
        "base_url": sandbox.base_url("kapture"),
        "credentials": {"token": {"env": "KAPTURE_TOKEN"}},
        **fields,
    }
    path = tmp_path / "accounts.json"
    # json.dumps writes NaN and Infinity as Python's json module reads them.
    path.write_text(json.dumps({"accounts": [account]}))
    return str(path)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"rate_limit": float("nan")}, "NaN is not a number JSON allows"),
        ({"timeout": float("inf")}, "Infinity is not a number JSON allows"),
        ({"rate_limit": 1e-300}, "rate_limit: The rate limit must be 0 (no limit)"),
        ({"timeout": 0}, "timeout: The timeout must be a number of seconds from 0.1 to 60. (got 0)"),
        ({"timeout": 1e12}, "timeout: The timeout must be a number of seconds"),
        (
            {"settings": {"breaker_threshold": 1e6}},
            "'breaker_threshold' must be a whole number from 1 to 1000",
        ),
    ],
)
def test_import_accounts_refuses_numbers_out_of_range_and_writes_nothing(
    tmp_path, sandbox, monkeypatch, fields, message
):
    path = write_import(tmp_path, sandbox, monkeypatch, **fields)
    with pytest.raises(CommandError) as refused:
        call_command("import_accounts", path)
    assert message in str(refused.value)
    assert not ProviderAccount.objects.exists()


def test_the_database_refuses_a_rate_or_timeout_written_around_the_form(account_factory):
    account = account_factory("kapture")
    for values in ({"timeout": 0}, {"timeout": 1e12}, {"rate_limit": 1e-300}, {"rate_limit": -1}):
        with pytest.raises(IntegrityError), transaction.atomic():
            ProviderAccount.objects.filter(pk=account.pk).update(**values)


LIMIT_CONSTRAINTS = ("provideraccount_rate_limit_range", "provideraccount_timeout_range")


def store_around_the_constraints(account: ProviderAccount, **values) -> None:
    """Write values the check constraints refuse (a row from before them, a manual fix)."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA ignore_check_constraints = ON")
            try:
                ProviderAccount.objects.filter(pk=account.pk).update(**values)
            finally:
                cursor.execute("PRAGMA ignore_check_constraints = OFF")
        else:  # dropped inside the test's transaction, so the rollback restores them
            for name in LIMIT_CONSTRAINTS:
                cursor.execute(f"ALTER TABLE providers_provideraccount DROP CONSTRAINT {name}")
            ProviderAccount.objects.filter(pk=account.pk).update(**values)


@contextlib.contextmanager
def committed_around_the_constraints(account: ProviderAccount, **values) -> Iterator[None]:
    """`store_around_the_constraints` for a test that commits its data (no rollback restores
    anything): on PostgreSQL the constraints are dropped for the block, and added back after
    it once the row holds its own values again. (SQLite writes around them row by row.)"""
    if connection.vendor == "sqlite":
        store_around_the_constraints(account, **values)
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = ANY(%s)",
            [list(LIMIT_CONSTRAINTS)],
        )
        definitions = dict(cursor.fetchall())
        own = ProviderAccount.objects.filter(pk=account.pk).values(*values).get()
        for name in definitions:
            cursor.execute(f"ALTER TABLE providers_provideraccount DROP CONSTRAINT {name}")
    try:
        ProviderAccount.objects.filter(pk=account.pk).update(**values)
        yield
    finally:
        ProviderAccount.objects.filter(pk=account.pk).update(**own)
        with connection.cursor() as cursor:
            for name, definition in definitions.items():
                cursor.execute(f"ALTER TABLE providers_provideraccount ADD CONSTRAINT {name} {definition}")


@pytest.mark.parametrize(
    "values",
    [
        {"timeout": 0},
        {"timeout": -5},
        {"timeout": 1e12},
        {"rate_limit": 1e-300},
    ],
)
@pytest.mark.django_db(transaction=True)  # the batch's threads read on connections of their own
def test_a_bad_stored_limit_fails_the_push_as_configuration_and_sends_nothing(
    account_factory, sandbox, values, nudges
):
    account = account_factory("kapture")
    ticket = services.create_ticket(account=account, title="VPN down", requester_email="a@acme.test")
    with committed_around_the_constraints(account, **values):
        # Failed, not needs_attention: nothing was sent.
        assert batch.push_account(sync.TICKETS, account.pk) == {SyncState.FAILED: 1}
        ticket.refresh_from_db()
        assert "cannot be used" in ticket.last_error and "Fix it under Limits" in ticket.last_error
        [attempt] = SyncAttempt.objects.filter(ticket=ticket)
        assert (attempt.outcome, attempt.http_status, attempt.request_url) == ("failed", None, "")
        assert sandbox.state("kapture")["tickets"] == []
        account.refresh_from_db()
        with pytest.raises(ProviderConfigurationError):
            account.get_provider()


def test_a_bad_stored_breaker_setting_falls_back_to_the_default(account_factory, settings):
    account = account_factory("kapture", settings={"breaker_threshold": "5", "breaker_cooldown": 1e300})
    assert limits.breaker_threshold(account) == settings.SYNC_BREAKER_THRESHOLD
    assert limits.breaker_cooldown(account).total_seconds() == settings.SYNC_BREAKER_COOLDOWN


def test_retry_unknown_creates_stored_as_text_does_not_resend_a_create(account_factory):
    account = account_factory("kapture", settings={"retry_unknown_creates": "false"})
    ticket = services.create_ticket(account=account, title="VPN down", requester_email="a@acme.test")
    Ticket.objects.filter(pk=ticket.pk).update(sync_state=SyncState.SENDING, attempts=1)
    ticket.refresh_from_db()
    assert sync.recover_abandoned(ticket) == 1
    ticket.refresh_from_db()
    assert ticket.sync_state == SyncState.NEEDS_ATTENTION  # "false" is not true: a person decides


def test_the_admin_change_page_still_opens_for_an_account_with_a_bad_stored_limit(
    superuser_client, account_factory
):
    account = account_factory("kapture")
    store_around_the_constraints(account, timeout=0)
    page = superuser_client.get(reverse("admin:providers_provideraccount_change", args=[account.pk]))
    assert page.status_code == 200
