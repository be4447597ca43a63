"""The lock files are generated from requirements*.in (README, "Development"): a pin edited in
an .in file without regenerating its lock would install something else than it says."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==([^\s\\;]+)")


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line)
        if match:
            found[normalized(match.group(1))] = match.group(2)
    return found


@pytest.mark.parametrize("name", ["requirements", "requirements-dev"])
def test_each_lock_pins_what_its_in_file_asks_for_with_hashes(name):
    wanted = pins(ROOT / f"{name}.in")
    locked = pins(ROOT / f"{name}.txt")
    assert wanted, f"{name}.in pins nothing"
    assert {n: locked.get(n) for n in wanted} == wanted
    # every entry carries hashes, so pip checks each download (--require-hashes is implied)
    lines = (ROOT / f"{name}.txt").read_text().splitlines()
    unhashed = [
        line
        for line, following in zip(lines, [*lines[1:], ""], strict=True)
        if PIN.match(line) and not following.strip().startswith("--hash=sha256:")
    ]
    assert not unhashed


def test_runtime_and_dev_locks_agree_on_shared_packages():
    runtime, dev = pins(ROOT / "requirements.txt"), pins(ROOT / "requirements-dev.txt")
    shared = runtime.keys() & dev.keys()
    assert shared  # requests, urllib3, ... are in both
    assert {n: dev[n] for n in shared} == {n: runtime[n] for n in shared}
