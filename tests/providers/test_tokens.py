"""providers/tokens.py on its own, through the test-only provider (tests/example_provider.py) and
its emulator over HTTP: the token is cached encrypted, shared by every caller of the account,
renewed before it expires, dropped and fetched again once after a 401, and a token call's
failure never reads as "the ticket call may have been applied"."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import responses
from django.db import connection
from django.utils import timezone

from providers.errors import ProviderAuthError, ProviderTransientError
from providers.models import AccessToken, ProviderAccount
from providers.tokens import EXPIRY_MARGIN
from tests.example_provider import ExampleProvider
from tickets.models import Ticket


def tokens_issued(sandbox) -> int:
    return sandbox.state("example")["tokens_issued"]


def ticket_of(account) -> Ticket:
    return Ticket(account=account, reference="TC-000001", title="Printer on fire", status="new")


@pytest.fixture
def account(account_factory):
    return account_factory("example")


@pytest.mark.django_db
def test_the_token_is_cached_encrypted_and_shared_by_every_caller_of_the_account(sandbox, account):
    ExampleProvider(account).test_connection()
    ExampleProvider(account).test_connection()  # another worker: no new token
    assert tokens_issued(sandbox) == 1
    token = AccessToken.objects.get(account=account).secret.reveal()["access_token"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM providers_accesstoken")  # the stored bytes, not decrypted
        stored = " ".join(str(value) for row in cursor.fetchall() for value in row)
    assert token and token not in stored


@pytest.mark.django_db
def test_a_token_about_to_expire_is_renewed_before_it_is_used(sandbox, account):
    provider = ExampleProvider(account)
    provider.test_connection()
    AccessToken.objects.filter(account=account).update(
        expires_at=timezone.now() + EXPIRY_MARGIN - timedelta(seconds=5)
    )
    old = AccessToken.objects.get(account=account).secret.reveal()["access_token"]
    ExampleProvider(account).test_connection()
    assert tokens_issued(sandbox) == 2
    assert AccessToken.objects.get(account=account).secret.reveal()["access_token"] != old


@pytest.mark.django_db
def test_a_token_the_provider_no_longer_accepts_is_dropped_and_fetched_again_once(sandbox, account):
    provider = ExampleProvider(account)
    provider.test_connection()
    sandbox.control("expire-tokens", {})
    assert provider.create(ticket_of(account)).remote_id  # 401, one new token, the call again
    assert tokens_issued(sandbox) == 2


@responses.activate
def test_a_401_that_persists_costs_one_new_token_then_is_an_auth_error():
    account = ProviderAccount(name="x", kind="example", base_url="https://desk.example.com", timeout=2)
    account.set_credentials({"client_id": "console", "client_secret": "right-secret"})
    token_call = responses.post("https://desk.example.com/oauth/token", json={"access_token": "tok-1234"})
    me = responses.get("https://desk.example.com/api/me", status=401, json={"message": "Unauthenticated."})
    with pytest.raises(ProviderAuthError, match="Unauthenticated."):
        ExampleProvider(account).test_connection()
    assert (token_call.call_count, me.call_count) == (2, 2)


@pytest.mark.django_db
def test_a_failed_token_call_is_retryable_never_an_unknown_outcome(sandbox, account):
    sandbox.faults(script=["500"], vendors=["example"])
    with pytest.raises(ProviderTransientError) as raised:
        ExampleProvider(account).create(ticket_of(account))
    assert raised.value.may_have_applied is False  # no ticket call was sent
    assert sandbox.state("example")["tickets"] == []


@pytest.mark.django_db
def test_a_refused_client_is_an_auth_error_in_the_providers_words(sandbox, account_factory):
    account = account_factory("example", credentials={"client_id": "console", "client_secret": "wrong"})
    with pytest.raises(ProviderAuthError) as raised:
        ExampleProvider(account).test_connection()
    assert raised.value.message == "Authentication failed: Unknown client or wrong secret."
    assert not AccessToken.objects.filter(account=account).exists()


@pytest.mark.django_db(transaction=True)
def test_callers_at_the_same_time_all_succeed_and_one_token_is_kept(sandbox, account_factory):
    account = account_factory("example")
    errors: list[Exception] = []
    start = threading.Barrier(4)

    def call() -> None:
        try:
            start.wait(5)
            ExampleProvider(account).test_connection()
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert 1 <= tokens_issued(sandbox) <= 4
    [row] = AccessToken.objects.filter(account=account)
    # Whichever caller stored last, the kept token is one the provider issued and accepts.
    ExampleProvider(account).test_connection()
    assert row.secret.reveal()["access_token"]
    assert tokens_issued(sandbox) <= 4
