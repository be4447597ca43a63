"""Keys of the embedded default, generated once into the git-ignored state directory.

Only used when the environment does not provide them (never in production mode).
"""

import os
from pathlib import Path


def _read_or_create(path: Path, make: "callable") -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: when web, worker and beat start together only one of them writes the key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        value = make()
        handle.write(value + "\n")
    return value


def ensure_local_secret(state_dir: Path) -> str:
    from django.core.management.utils import get_random_secret_key

    return _read_or_create(state_dir / "secret.key", get_random_secret_key)


def ensure_local_encryption_keys(state_dir: Path) -> list[str]:
    from cryptography.fernet import Fernet

    text = _read_or_create(state_dir / "encryption.keys", lambda: Fernet.generate_key().decode())
    return [line.strip() for line in text.splitlines() if line.strip()]
