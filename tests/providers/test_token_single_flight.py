"""Single-flight tokens: however many workers find the token missing, expiring or refused at
once, one of them calls the token endpoint and the others use what it got. The workers here are
threads, each with its own database connection (as processes on other machines have); the
token endpoint is the sandbox's, over HTTP, which counts the grants it served."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
import requests
from django.db import connection, connections
from django.utils import timezone

from providers.errors import ProviderAuthError
from providers.keliweb import KeliwebProvider
from providers.models import AccessToken, ProviderAccount
from providers.motadata import MotadataProvider
from tickets.models import Ticket

WORKERS = 4


def in_parallel(job, count: int = WORKERS) -> list:
    """Run `job(index)` in `count` threads released together; returns results (or exceptions)."""
    results: list = [None] * count
    start = threading.Barrier(count)

    def run(index: int) -> None:
        try:
            results[index] = job(index, start)
        except Exception as exc:  # noqa: BLE001 - handed back to the test to assert on
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def ticket(**fields) -> Ticket:
    return Ticket(
        **{
            "reference": "TC-000042",
            "title": "Printer on fire",
            "description": "Smoke",
            "requester_email": "tim@acme.com",
            "requester_name": "Tim",
            "priority": "medium",
            "status": "new",
            **fields,
        }
    )


@pytest.mark.django_db(transaction=True)
def test_four_workers_on_a_fresh_account_make_one_password_grant(sandbox, account_factory):
    account = account_factory("motadata")

    def sign_in(_index, start):
        provider = MotadataProvider(ProviderAccount.objects.get(pk=account.pk))
        start.wait()
        return provider.access_token()

    tokens = in_parallel(sign_in)
    assert all(isinstance(token, str) for token in tokens), tokens
    assert len(set(tokens)) == 1  # everyone uses the one token
    assert sandbox.state("motadata")["grants"] == {"password": 1, "refresh_token": 0}
    row = AccessToken.objects.get(account=account)
    assert (row.renewing_by, row.renewing_until) == ("", None)  # the lease was given back
    with connection.cursor() as cursor:  # stored encrypted
        cursor.execute("SELECT secret FROM providers_accesstoken WHERE id = %s", [row.pk])
        assert tokens[0] not in cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_after_a_401_only_the_worker_whose_token_is_still_cached_renews(sandbox, account_factory):
    """Keliweb revokes a token when it is refreshed: four workers each renewing would churn."""
    account = account_factory("keliweb")
    ref = KeliwebProvider(account).create(ticket())
    sandbox.control("expire-tokens", {})  # every worker's cached token is now refused

    def read_back(_index, start):
        provider = KeliwebProvider(ProviderAccount.objects.get(pk=account.pk))
        stale = provider.access_token()  # each holds the token that is about to be refused
        start.wait()
        [state] = provider.fetch([ticket(remote_id=ref.remote_id)])
        return stale, provider.access_token(), state.remote_status

    results = in_parallel(read_back)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len({stale for stale, _, _ in results}) == 1
    assert len({new for _, new, _ in results}) == 1 and results[0][0] != results[0][1]
    assert {status for _, _, status in results} == {"Open"}
    remote = sandbox.state("keliweb")
    assert (remote["password_grants"], remote["refresh_grants"]) == (2, 0)  # the first, and one renewal


@pytest.mark.django_db(transaction=True)
def test_near_expiry_four_workers_make_one_refresh_grant(sandbox, account_factory):
    account = account_factory("keliweb")
    KeliwebProvider(account).test_connection()
    AccessToken.objects.filter(account=account).update(expires_at=timezone.now() + timedelta(seconds=30))

    def sign_in(_index, start):
        provider = KeliwebProvider(ProviderAccount.objects.get(pk=account.pk))
        start.wait()
        return provider.access_token()

    tokens = in_parallel(sign_in)
    assert all(isinstance(token, str) for token in tokens) and len(set(tokens)) == 1, tokens
    remote = sandbox.state("keliweb")
    assert (remote["password_grants"], remote["refresh_grants"]) == (1, 1)


def outside_token(sandbox) -> str:
    """A token the sandbox issued to someone else (the worker holding the lease, here)."""
    creds = sandbox.credentials["motadata"]
    response = requests.post(
        f"{sandbox.base_url('motadata')}/api/oauth/token",
        auth=(creds["client_id"], creds["client_secret"]),
        data={"grant_type": "password", "username": creds["username"], "password": creds["password"]},
        timeout=5,
    )
    response.raise_for_status()
    return response.json()["access_token"]


@pytest.mark.django_db(transaction=True)
def test_a_worker_waits_for_the_renewal_another_worker_holds(sandbox, account_factory):
    account = account_factory("motadata")
    AccessToken.objects.create(
        account=account, renewing_by="other-worker", renewing_until=timezone.now() + timedelta(seconds=20)
    )
    token = outside_token(sandbox)

    def other_worker_finishes():
        time.sleep(0.5)
        AccessToken.objects.filter(account=account).update(
            secret={"access_token": token, "refresh_token": ""},
            expires_at=timezone.now() + timedelta(hours=1),
            renewing_by="",
            renewing_until=None,
        )
        connections.close_all()

    finisher = threading.Thread(target=other_worker_finishes)
    began = time.monotonic()
    finisher.start()
    MotadataProvider(account).create(ticket())
    finisher.join()
    assert time.monotonic() - began >= 0.5
    assert sandbox.state("motadata")["grants"] == {"password": 1, "refresh_token": 0}  # the other's only
    assert len(sandbox.state("motadata")["incidents"]) == 1


@pytest.mark.django_db
def test_a_lease_left_by_a_dead_worker_ends_by_itself(sandbox, account_factory):
    account = account_factory("motadata")
    AccessToken.objects.create(
        account=account, renewing_by="dead-worker", renewing_until=timezone.now() - timedelta(seconds=1)
    )
    MotadataProvider(account).create(ticket())
    assert sandbox.state("motadata")["grants"] == {"password": 1, "refresh_token": 0}
    assert AccessToken.objects.get(account=account).renewing_by == ""


@pytest.mark.django_db
def test_a_refused_sign_in_frees_the_lease_for_the_next_worker(sandbox, account_factory):
    account = account_factory("motadata", credentials={**sandbox.credentials["motadata"], "password": "nope"})
    with pytest.raises(ProviderAuthError):
        MotadataProvider(account).create(ticket())
    assert not AccessToken.objects.filter(account=account).exists()  # no token, no lease left


@pytest.mark.django_db
def test_a_failed_renewal_of_an_expired_token_gives_the_lease_back(sandbox, account_factory):
    account = account_factory("motadata")
    MotadataProvider(account).create(ticket())
    emulator = sandbox.server.emulators["motadata"]
    with emulator.lock:
        emulator.refresh_tokens.clear()  # the refresh is refused, then the password too
    wrong = {**sandbox.credentials["motadata"], "password": "nope"}
    # Written around save(), which would drop the cached token with the old credentials.
    ProviderAccount.objects.filter(pk=account.pk).update(credentials=wrong)
    AccessToken.objects.filter(account=account).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(ProviderAuthError):
        MotadataProvider(ProviderAccount.objects.get(pk=account.pk)).create(ticket())
    row = AccessToken.objects.get(account=account)
    assert (row.renewing_by, row.renewing_until) == ("", None)
