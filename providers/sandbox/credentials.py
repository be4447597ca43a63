"""Credentials of the local sandbox: random, generated once into the state directory.

The demo accounts and the sandbox read the same file, so nothing secret is ever written
into the repository, fixtures or docs.
"""

import json
import os
from pathlib import Path

from django.conf import settings

from providers.sandbox.registry import EMULATORS


def credentials_path() -> Path:
    return Path(settings.STATE_DIR) / "sandbox-credentials.json"


def load_or_create(path: Path | None = None) -> dict[str, dict[str, str]]:
    path = path or credentials_path()
    existing: dict[str, dict[str, str]] = {}
    if path.is_file():
        existing = json.loads(path.read_text())
    missing = [cls for cls in EMULATORS if cls.name not in existing]
    if missing:
        for cls in missing:
            existing[cls.name] = cls.generate_credentials()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(existing, indent=2))
        os.chmod(tmp, 0o600)
        tmp.replace(path)
    return existing
