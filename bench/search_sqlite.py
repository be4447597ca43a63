"""Ticket search on SQLite at 1,000 and 100,000 tickets: the admin and staff searches of
bench/admin_scale.py through the FTS5 trigram index (tickets/search_fts.py), and the same
searches reading the table (the index switched off), for comparison.

Not a test. Run without DATABASE_URL (two SQLite files in a temporary directory):

    CONSOLE_STATE_DIR=$(mktemp -d) .venv/bin/python bench/search_sqlite.py

Prints the figures and records them in docs/benchmarks.md ("search-sqlite").
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from bench import admin_scale  # noqa: E402
from bench.admin_scale import LARGE, PAGE_LABELS, SMALL, VARIANTS  # noqa: E402
from bench.report import record  # noqa: E402
from providers.models import ProviderAccount  # noqa: E402
from tickets import search_fts  # noqa: E402

RUNS = 9
SEARCHES = {key: page for key, page in VARIANTS.items() if key[1] not in ("plain", "filtered")}


def main() -> None:
    if connection.vendor != "sqlite":
        sys.exit("Run this without DATABASE_URL: it measures SQLite.")
    folder = Path(tempfile.mkdtemp(prefix="search-bench-"))
    databases = {size: str(folder / f"tickets_{size}.sqlite3") for size in (SMALL, LARGE)}
    clients = {}
    for size, name in databases.items():
        admin_scale.use_database(name)
        call_command("migrate", verbosity=0)
        accounts = []
        for kind in admin_scale.KINDS:
            account = ProviderAccount(name=f"Bench {kind}", kind=kind, base_url="http://127.0.0.1:9/")
            account.set_credentials({})
            account.save()
            accounts.append(account)
        admin_scale.seed_to(size, accounts)
        clients[size] = Client()
        clients[size].force_login(User.objects.create_superuser("bench", "", "x"))

    real_in_use = search_fts.in_use
    modes = {"index": real_in_use, "table": lambda connection: False}
    queries, matches, times = {}, {}, {}
    for size, name in databases.items():
        admin_scale.use_database(name)
        for mode, in_use in modes.items():
            search_fts.in_use = in_use
            for variant, page in SEARCHES.items():
                queries[size, mode, variant], matches[size, mode, variant] = admin_scale.page_queries(
                    clients[size], *page
                )
    for _ in range(RUNS):  # sizes and modes in alternation, so a busy machine slows all alike
        for size, name in databases.items():
            admin_scale.use_database(name)
            for mode, in_use in modes.items():
                search_fts.in_use = in_use
                for variant, page in SEARCHES.items():
                    times.setdefault((size, mode, variant), []).append(
                        admin_scale.page_ms(clients[size], *page)[0]
                    )
    search_fts.in_use = real_in_use
    median = {key: statistics.median(values) for key, values in times.items()}
    for key in sorted(median):
        print(key, f"{median[key]:.1f} ms", matches[key])
    load = " / ".join(f"{value:.1f}" for value in os.getloadavg())
    rows = []
    for variant in SEARCHES:
        cells = []
        for mode in modes:
            small, large = median[SMALL, mode, variant], median[LARGE, mode, variant]
            cells.append(f"{small:.1f} / {large:.1f} | **{large / small:.2f}**")
        rows.append(
            f"| {PAGE_LABELS[variant]} | {matches[SMALL, 'index', variant]} / "
            f"{matches[LARGE, 'index', variant]} | {' | '.join(cells)} |"
        )
    body = "\n".join(
        [
            "## Ticket search on SQLite",
            "",
            "`bench/search_sqlite.py`: the searches of `bench/admin_scale.py` (same seed, superuser, "
            f"DEBUG on, Django's test client) on SQLite {connection.Database.sqlite_version}, median of "
            f"{RUNS} page loads at each size, two ways: through the FTS5 trigram index (*index*, the "
            "console's behaviour) and with the index switched off so every search reads the table "
            "(*table*, the behaviour before migration 0011 and the fallback where SQLite lacks the "
            "trigram tokenizer).",
            "",
            "| page | matches 1k / 100k | index: ms 1k / 100k | index: 100k ÷ 1k | table: ms 1k / 100k "
            "| table: 100k ÷ 1k |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            "Like with like: the unique e-mail (whole and in part), the title phrase and the reference "
            "find one ticket at both sizes, so their 100k ÷ 1k ratios compare the same page over a "
            f"{LARGE // SMALL}× bigger table. The shared e-mail finds 1 ticket at 1,000 and 101 at 100,000 "
            "(whole or in part), so its pages render more rows at 100k and its ratios compare different "
            "pages. A search under 3 characters has no trigram and reads the table (not measured). "
            f"Load average while measuring: {load} (2 cores, shared with other work).",
        ]
    )
    record("search-sqlite", body)


if __name__ == "__main__":
    main()
