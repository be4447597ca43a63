"""The repository's documents stand alone: nothing tracked points at a document outside it.

The architecture and the provider wire reference live in docs/architecture.md and
docs/providers.md; the vendors' excerpts in tests/providers/seeds/. A reference to a design
note or provider reference kept beside a checkout would be a dead end for every other reader.
"""

import json
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEXT_SUFFIXES = {".py", ".md", ".sh", ".html", ".toml", ".txt"}
# Spelled in pieces so this file does not match itself.
DESIGN_NOTE, PROVIDERS_NOTE, SHARED_DIR = "DESIGN" + ".md", "PROVIDERS" + ".md", "../" + "shared"
OUTSIDE_DOCUMENT = re.compile(
    rf"\b{re.escape(DESIGN_NOTE)}|\b{re.escape(PROVIDERS_NOTE)}|{re.escape(SHARED_DIR)}"
)


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, text=True
    ).stdout.split("\0")
    return [ROOT / name for name in listed if name and Path(name).suffix in TEXT_SUFFIXES]


def test_no_tracked_file_refers_to_a_document_outside_the_repository():
    files = tracked_text_files()
    assert ROOT / "README.md" in files  # the listing worked: the check below is not vacuous
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in files
        if path.is_file()
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if OUTSIDE_DOCUMENT.search(line)
    ]
    assert not offenders, "Refer to docs/ or tests/providers/seeds/ instead:\n" + "\n".join(offenders)


def test_the_check_catches_each_kind_of_outside_reference():
    for line in (f"see {DESIGN_NOTE}", f'"""Kapture ({PROVIDERS_NOTE} §4).', f"copies of {SHARED_DIR}/seeds"):
        assert OUTSIDE_DOCUMENT.search(line), line
    for line in ("docs/providers.md §4", 'docs/architecture.md "Sync"', "tests/providers/seeds/"):
        assert not OUTSIDE_DOCUMENT.search(line), line


# --- the generic provider's worked examples are the shipped ones ------------------------------
GENERIC_DOC = ROOT / "docs" / "generic-provider.md"
GENERIC_EXAMPLES = ROOT / "providers" / "generic" / "examples"
EXAMPLE_BLOCK = re.compile(r"<!-- example: (?P<name>[\w-]+) -->\s*```json\n(?P<body>.*?)\n```", re.DOTALL)


def test_the_generic_providers_worked_examples_are_the_shipped_configurations():
    documented = {m["name"]: json.loads(m["body"]) for m in EXAMPLE_BLOCK.finditer(GENERIC_DOC.read_text())}
    shipped = {path.stem: json.loads(path.read_text()) for path in GENERIC_EXAMPLES.glob("*.json")}
    assert len(shipped) == 5
    assert documented == shipped
