"""System checks of the console's own settings (run by `manage.py check`, `check --deploy`
and before runserver/migrate). Registered by providers/apps.py."""

from __future__ import annotations

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.security)
def check_encryption_keys(app_configs=None, **kwargs) -> list[Error]:
    """Every CONSOLE_ENCRYPTION_KEYS entry must be a Fernet key; a bad one would stop every
    credential from being read or written. Messages give the entry's position, never a key."""
    keys = list(getattr(settings, "CONSOLE_ENCRYPTION_KEYS", []) or [])
    if not keys:
        return [
            Error(
                "CONSOLE_ENCRYPTION_KEYS is empty: there is no key to encrypt provider credentials with.",
                hint='Set it to one or more comma-separated Fernet keys, e.g. from python -c "from '
                'cryptography.fernet import Fernet; print(Fernet.generate_key().decode())".',
                id="console.E001",
            )
        ]
    errors = []
    for position, key in enumerate(keys, 1):
        try:
            Fernet(str(key).encode())  # exactly as console/crypto.py reads it
        except (ValueError, TypeError):
            errors.append(
                Error(
                    f"CONSOLE_ENCRYPTION_KEYS entry {position} of {len(keys)} is not a Fernet key "
                    "(32 url-safe base64-encoded bytes).",
                    hint="Replace it with the key the credentials were written with, or a new key "
                    "from Fernet.generate_key() (then enter the credentials again).",
                    id="console.E002",
                )
            )
    return errors
