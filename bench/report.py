"""Writes a benchmark's figures into its own section of docs/benchmarks.md."""

import re
from datetime import date
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = "# Benchmarks\n\nFigures written by the scripts in `bench/` (run them again to refresh).\n"


def record(section: str, body: str) -> None:
    """Replace (or add) the section `section` with `body`, stamped with today's date."""
    text = DOC.read_text() if DOC.exists() else HEADER
    start, end = f"<!-- {section}:start -->", f"<!-- {section}:end -->"
    block = f"{start}\n{body.rstrip()}\n\n_Measured {date.today().isoformat()}._\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = (
        pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    )
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)
