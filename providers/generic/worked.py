"""The worked configurations in providers/generic/examples/: each makes the generic provider
speak one built-in provider's API (the contract suite runs every one against that provider's
sandbox). A starting point for an admin configuring an API of the same shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
#: Per worked configuration: the generic credential -> the built-in kind's credential it holds
#: (each example's "description" says the same in words, for an admin).
PASSWORD_GRANT = {"client_id": "client_id", "client_secret": "client_secret", "username": "username"}
CREDENTIALS = {
    "kapture": {"token": "token"},
    "particlespace": {"client_id": "publish_key", "client_secret": "secret_key"},
    "keliweb": {**PASSWORD_GRANT, "password": "password"},
    "motadata": {**PASSWORD_GRANT, "password": "password"},
    "knight": {"signing_key": "source_token"},
}


def example_names() -> list[str]:
    """The examples by name: the built-in kind each one speaks (kapture, knight, ...)."""
    return sorted(path.stem for path in EXAMPLES_DIR.glob("*.json"))


def load_example(name: str) -> dict[str, Any]:
    if name not in example_names():
        raise KeyError(f"No worked configuration named '{name}'; there are {', '.join(example_names())}.")
    return json.loads((EXAMPLES_DIR / f"{name}.json").read_text(encoding="utf-8"))


def generic_credentials(name: str, values: dict[str, str]) -> dict[str, str]:
    """The generic account's credentials for example `name`, from the built-in kind's `values`."""
    return {generic: values[own] for generic, own in CREDENTIALS.get(name, {}).items() if own in values}
