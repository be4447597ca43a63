"""Credentials at rest: encrypted, unreadable without the key (clearly), rotatable."""

import json

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection

from console.crypto import CredentialsUnreadable
from providers.models import ProviderAccount


def new_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def keys(settings):
    """Set CONSOLE_ENCRYPTION_KEYS for one test."""

    def use(*values: str) -> None:
        settings.CONSOLE_ENCRYPTION_KEYS = list(values)

    return use


def stored_ciphertext(account: ProviderAccount) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT credentials FROM providers_provideraccount WHERE id = %s", [account.pk])
        return cursor.fetchone()[0]


def make(name="acme", secret="s3cret-token-value"):
    account = ProviderAccount(name=name, kind="kapture", base_url="https://acme.kapturecrm.com")
    account.set_credentials({"token": secret})
    account.save()
    return account


@pytest.mark.django_db
def test_credentials_are_encrypted_in_the_database_and_read_back(keys):
    keys(new_key())
    account = make()
    assert "s3cret-token-value" not in stored_ciphertext(account)
    assert ProviderAccount.objects.get(pk=account.pk).get_credentials() == {"token": "s3cret-token-value"}
    assert account.credentials_updated_at is not None


@pytest.mark.django_db
def test_a_wrong_key_raises_a_clear_error_never_the_ciphertext(keys):
    keys(new_key())
    account = make()
    keys(new_key())
    loaded = ProviderAccount.objects.get(pk=account.pk)  # listing accounts still works
    assert "encrypted" in repr(loaded.credentials)
    with pytest.raises(CredentialsUnreadable, match="CONSOLE_ENCRYPTION_KEYS") as raised:
        loaded.get_credentials()
    assert stored_ciphertext(account) not in str(raised.value)


@pytest.mark.django_db
def test_rotation_re_encrypts_under_the_newest_key(keys):
    old, new = new_key(), new_key()
    keys(old)
    account = make()
    before = stored_ciphertext(account)
    keys(new, old)
    call_command("rotate_credentials", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert stored_ciphertext(account) != before
    keys(new)  # the old key can now be dropped
    assert ProviderAccount.objects.get(pk=account.pk).get_credentials() == {"token": "s3cret-token-value"}


@pytest.mark.django_db
def test_rotation_re_encrypts_the_callback_secret_too(keys):
    old, new = new_key(), new_key()
    keys(old)
    account = ProviderAccount(
        name="knight",
        kind="knight",
        base_url="https://knight.example",
        settings={"callback_base_url": "https://console.example.com"},
    )
    account.set_credentials({"source_token": "s3cret-token-value"})
    account.save()
    secret = account.get_callback_secrets()["current"]
    keys(new, old)
    call_command("rotate_credentials", stdout=open("/dev/null", "w"))  # noqa: SIM115
    keys(new)  # callbacks still accepted after the old key is dropped
    assert ProviderAccount.objects.get(pk=account.pk).get_callback_secrets() == {"current": secret}


@pytest.mark.django_db
def test_rotation_refuses_and_changes_nothing_when_an_account_is_unreadable(keys):
    lost, old, new = new_key(), new_key(), new_key()
    keys(lost)
    orphan = make("orphan")
    keys(old)
    good = make("good")
    good_before = stored_ciphertext(good)
    keys(new, old)
    with pytest.raises(CommandError, match="orphan"):
        call_command("rotate_credentials")
    assert stored_ciphertext(good) == good_before
    assert stored_ciphertext(orphan)


@pytest.mark.django_db
def test_serialized_accounts_carry_no_secret(keys, capsys):
    keys(new_key())
    make()
    call_command("dumpdata", "providers.provideraccount")
    dumped = json.loads(capsys.readouterr().out)
    assert dumped[0]["fields"]["credentials"] == ""
    assert "s3cret" not in json.dumps(dumped)
