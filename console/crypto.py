"""Encryption of stored secrets with MultiFernet under CONSOLE_ENCRYPTION_KEYS.

The first key encrypts; every key decrypts, so a new key is rolled out by putting it in
front and running `manage.py rotate_credentials`, after which older keys can be dropped.
"""

import json
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class CredentialsUnreadable(Exception):
    """Stored ciphertext that none of the configured keys can open.

    Raised instead of ever handing ciphertext back as if it were the secret.
    """

    def __init__(self, what: str = "Stored credentials") -> None:
        super().__init__(
            f"{what} cannot be decrypted with the configured encryption keys "
            "(CONSOLE_ENCRYPTION_KEYS). Restore the key they were written with, "
            "or enter the credentials again."
        )


@lru_cache(maxsize=4)
def _multifernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("CONSOLE_ENCRYPTION_KEYS is empty: no key to encrypt with.")
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(
            "CONSOLE_ENCRYPTION_KEYS holds a value that is not a Fernet key "
            "(32 url-safe base64-encoded bytes)."
        ) from exc


def multifernet() -> MultiFernet:
    return _multifernet(tuple(settings.CONSOLE_ENCRYPTION_KEYS))


def encrypt_json(value: dict) -> str:
    return multifernet().encrypt(json.dumps(value, sort_keys=True).encode()).decode()


def decrypt_json(token: str, *, what: str = "Stored credentials") -> dict:
    try:
        return json.loads(multifernet().decrypt(token.encode()))
    except InvalidToken:
        # InvalidToken says nothing more, and an error report would capture the frames that
        # hold the keys and the plaintext: the cause is dropped.
        raise CredentialsUnreadable(what) from None


def rotate(token: str, *, what: str = "Stored credentials") -> str:
    """Re-encrypt `token` under the newest key."""
    try:
        return multifernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise CredentialsUnreadable(what) from None  # as in decrypt_json: keys in the frames
