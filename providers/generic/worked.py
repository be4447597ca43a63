"""The worked configurations in providers/generic/examples/: each makes the generic provider
speak one built-in provider's API (the contract suite runs every one against that provider's
sandbox). A starting point for an admin configuring an API of the same shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"


def example_names() -> list[str]:
    """The examples by name: the built-in kind each one speaks (kapture, knight, ...)."""
    return sorted(path.stem for path in EXAMPLES_DIR.glob("*.json"))


def load_example(name: str) -> dict[str, Any]:
    if name not in example_names():
        raise KeyError(f"No worked configuration named '{name}'; there are {', '.join(example_names())}.")
    return json.loads((EXAMPLES_DIR / f"{name}.json").read_text(encoding="utf-8"))
