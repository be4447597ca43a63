"""A model field holding a JSON object encrypted at rest."""

from django.db import models

from console import crypto


class SealedJSON:
    """Ciphertext loaded from the database, opened only on purpose with `reveal()`.

    Keeping it sealed means a wrong key breaks only the code that needs the secret (with a
    clear error), not every page that lists accounts, and printing it shows nothing.
    """

    __slots__ = ("token",)

    def __init__(self, token: str) -> None:
        self.token = token

    def reveal(self) -> dict:
        return crypto.decrypt_json(self.token) if self.token else {}

    def __bool__(self) -> bool:
        return bool(self.token)

    def __repr__(self) -> str:
        return "<SealedJSON: encrypted>"

    __str__ = __repr__


class EncryptedJSONField(models.TextField):
    """Stores a dict as Fernet ciphertext; loads as `SealedJSON`; accepts dicts on assignment."""

    def from_db_value(self, value, expression, connection):
        return SealedJSON(value or "")

    def to_python(self, value):
        if isinstance(value, (SealedJSON, dict)):
            return value
        return SealedJSON(value or "")

    def get_prep_value(self, value):
        if isinstance(value, SealedJSON):
            return value.token
        if value is None:
            return ""
        return crypto.encrypt_json(dict(value))

    def value_to_string(self, obj):
        # Serialization (dumpdata, fixtures) never writes secrets, not even encrypted ones.
        return ""
