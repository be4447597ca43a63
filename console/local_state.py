"""The embedded default's local state: keys generated once into the git-ignored state
directory (only when the environment does not provide them; never in production mode), and
owner-only permissions on everything there (database, broker, keys, media).
"""

import os
from pathlib import Path

#: Files and folders of the state directory: readable by the console's own user only.
FILE_MODE, DIR_MODE = 0o600, 0o700


def restrict_local_state(state_dir: Path) -> None:
    """Owner-only permissions for the state directory and what is in it.

    The umask covers what processes create from now on (SQLite's database and its -wal/-shm,
    the broker's file, key files, exports); the chmods fix what an older run left readable.
    """
    os.umask(0o077)
    state_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    state_dir.chmod(DIR_MODE)
    for entry in state_dir.iterdir():
        if entry.is_symlink():
            continue
        if entry.is_dir():
            entry.chmod(DIR_MODE)
        elif entry.is_file():
            entry.chmod(FILE_MODE)


def _read_or_create(path: Path, make: "callable") -> str:
    path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
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
