"""Ticket admin and staff list at scale: lists and searches at 1,000 and 100,000 tickets, and bulk actions.

Not a test. Run on its own PostgreSQL database (it is emptied) and a Redis db of its own:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/console_bench \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/13 .venv/bin/python bench/admin_scale.py

Prints the figures and records them in docs/benchmarks.md ("admin-scale"). The searches alone,
on SQLite (its FTS5 index) at both sizes, without PostgreSQL or Redis: bench/search_sqlite.py.
Targets: the changelist takes the same number of queries (≤ 10) at both sizes and its page
time at 100k is ≤ 1.5 × the 1k time; a bulk action over 10,000 selected tickets answers < 1 s.
A browser cannot tick 10,000 boxes (a page shows at most 200 rows, and Django refuses more than
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1,000 POST fields), so the 10,000 are chosen as a person would:
"select all" on a filtered changelist (the seed makes exactly 10% of the tickets failed).
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.urls import reverse  # noqa: E402

from bench.report import record  # noqa: E402
from providers.models import ProviderAccount  # noqa: E402
from tickets import bulk  # noqa: E402
from tickets.models import BulkJob, Priority, Status, SyncState, Ticket  # noqa: E402

SMALL, LARGE, SELECTED, TICKED = 1_000, 100_000, 10_000, 900
# One ticket whose requester no other ticket shares, at both sizes (every other address repeats
# every 997 tickets): the e-mail searches that find the same tickets at 1k and 100k.
UNIQUE_EMAIL_AT, UNIQUE_EMAIL = 424, "ticket424.requester@example.com"
PAGE_RUNS = 25
KINDS = ("kapture", "keliweb", "knight", "motadata", "particlespace")


def require_own_database() -> None:
    if connection.vendor != "postgresql" or "bench" not in connection.settings_dict["NAME"]:
        sys.exit(
            "Run this on PostgreSQL with a database of its own whose name contains 'bench' "
            "(it is emptied), e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/console_bench"
        )
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        sys.exit("Point CELERY_BROKER_URL at a Redis db of the benchmark's own (it is flushed).")


def seed_to(total: int, accounts: list[ProviderAccount]) -> None:
    """Top the tickets up to `total` with bulk_create (references set here: save() is skipped)."""
    have = Ticket.objects.count()
    statuses, priorities = list(Status.values), list(Priority.values)
    states = [state for state in SyncState.values if state != SyncState.FAILED]
    batch = []
    for index in range(have, total):
        batch.append(
            Ticket(
                reference=f"TC-B{index:07d}",
                account=accounts[index % len(accounts)],
                title=f"Benchmark ticket {index} of the seed",
                requester_email=UNIQUE_EMAIL
                if index == UNIQUE_EMAIL_AT
                else f"user{index % 997}@example.com",
                requester_name=f"User {index % 997}",
                status=statuses[index % len(statuses)],
                priority=priorities[index % len(priorities)],
                sync_state=SyncState.FAILED if index % 10 == 0 else states[index % len(states)],
                remote_id=str(index) if index % 3 else "",
                revision=1,
            )
        )
        if len(batch) == 5_000:
            Ticket.objects.bulk_create(batch)
            batch = []
    Ticket.objects.bulk_create(batch)
    with connection.cursor() as cursor:  # fresh statistics, as autovacuum would gather them
        cursor.execute("VACUUM ANALYZE tickets_ticket" if connection.vendor == "postgresql" else "ANALYZE")


ADMIN, STAFF = "admin:tickets_ticket_changelist", "tickets:list"
# (page, variant) -> (url name, query). The searches: a shared requester e-mail, whole and in
# part (1 match at 1k, 101 at 100k: the page shows more rows), the unique one, whole and in part,
# a title phrase and an exact reference (1 match at both sizes).
SEARCHES = {
    "email": "user17@example.com",
    "email part": "user17@exam",
    "unique email": UNIQUE_EMAIL,
    "unique email part": "ticket424.req",
    "title": "ticket 424 of",
    "reference": "TC-B0000424",
}
SAME_MATCHES = ("unique email", "unique email part", "title", "reference")
VARIANTS = {
    ("admin", "plain"): (ADMIN, {}),
    ("admin", "filtered"): (ADMIN, {"status__exact": "open", "account__kind__exact": "kapture"}),
    # The title phrase quoted: the admin splits words.
    **{("admin", name): (ADMIN, {"q": f'"{q}"' if " " in q else q}) for name, q in SEARCHES.items()},
    ("staff", "plain"): (STAFF, {}),
    **{("staff", name): (STAFF, {"q": q}) for name, q in SEARCHES.items()},
}


ADMIN_PLAIN = ("admin", "plain")
SEARCH_LABELS = {
    "email": "whole shared e-mail",
    "email part": "part of the shared e-mail",
    "unique email": "whole unique e-mail",
    "unique email part": "part of the unique e-mail",
    "title": "title phrase",
    "reference": "reference",
}
PAGE_LABELS = {
    ("admin", "plain"): "admin changelist",
    ("admin", "filtered"): "admin, filtered (status + kind)",
    ("staff", "plain"): "staff list",
    **{
        (page, name): f"{page} search, {label}"
        for page in ("admin", "staff")
        for name, label in SEARCH_LABELS.items()
    },
}


def use_database(name: str) -> None:
    """Point the default connection at another database (the 1k and the 100k one)."""
    connection.close()
    connection.settings_dict["NAME"] = name


def page_queries(client: Client, url_name: str, query: dict) -> tuple[int, str]:
    """The page's query count, and the number of matches it reports."""
    url = reverse(url_name)
    client.get(url, query)  # warm caches
    connection.queries_log.clear()  # DEBUG's log is capped: a full one would hide new queries
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, query)
        assert response.status_code == 200
    page = response.content.decode()
    pager = page[
        page.find('class="paginator"' if url_name == ADMIN else 'class="small text-body-secondary"') :
    ]
    said = re.search(r"(More than )?(\d+) tickets?\b", pager)
    return len(queries), f"{'> ' if said[1] else ''}{int(said[2]):,}" if said else "none"


def page_ms(client: Client, url_name: str, query: dict) -> tuple[float, float]:
    """The page's time and the part of it spent in the database (ms)."""
    url = reverse(url_name)
    client.get(url, query)  # the connection is new after a switch: not part of the page time
    connection.queries_log.clear()
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        client.get(url, query)
        elapsed = (time.perf_counter() - started) * 1000
    return elapsed, sum(float(q["time"]) for q in queries.captured_queries) * 1000


def time_action(client: Client, data: dict, query: str = "") -> tuple[float, int, BulkJob]:
    url = reverse("admin:tickets_ticket_changelist") + (f"?{query}" if query else "")
    connection.queries_log.clear()
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        response = client.post(url, {"index": "0", **data})
        elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 302, response.content[:500]
    return elapsed, len(queries), BulkJob.objects.latest("pk")


def main() -> None:
    require_own_database()
    import redis

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.flushdb()
    databases = {SMALL: f"{connection.settings_dict['NAME']}_1k", LARGE: connection.settings_dict["NAME"]}
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [databases[SMALL]])
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{databases[SMALL]}"')
    clients = {}
    for size, name in databases.items():
        use_database(name)
        call_command("migrate", verbosity=0)
        with connection.cursor() as cursor:  # the benchmark's own database: start from empty, fast
            cursor.execute("TRUNCATE tickets_ticket, tickets_bulkjob RESTART IDENTITY CASCADE")
        ProviderAccount.objects.filter(name__startswith="Bench ").delete()
        accounts = []
        for kind in KINDS:
            account = ProviderAccount(name=f"Bench {kind}", kind=kind, base_url="http://127.0.0.1:9/")
            account.set_credentials({})
            account.save()
            accounts.append(account)
        seed_to(size, accounts)
        user = User.objects.filter(username="bench").first() or User.objects.create_superuser(
            "bench", "", "x"
        )
        clients[size] = Client()
        clients[size].force_login(user)

    # The two sizes are measured in alternation, so a busy machine slows both alike.
    queries, matches, times = {}, {}, {(size, v): [] for size in databases for v in VARIANTS}
    for size, name in databases.items():
        use_database(name)
        measured = {v: page_queries(clients[size], *page) for v, page in VARIANTS.items()}
        queries[size] = {v: counted[0] for v, counted in measured.items()}
        matches[size] = {v: counted[1] for v, counted in measured.items()}
    for _ in range(PAGE_RUNS):
        for size, name in databases.items():
            use_database(name)
            for variant, page in VARIANTS.items():
                times[size, variant].append(page_ms(clients[size], *page))
    medians = {key: statistics.median(page for page, _ in values) for key, values in times.items()}
    sql_medians = {key: statistics.median(sql for _, sql in values) for key, values in times.items()}
    for size in databases:
        print(
            f"{size:>7} tickets: "
            + "; ".join(
                f"{'/'.join(v)} {queries[size][v]} q {medians[size, v]:.1f} ms (SQL {sql_medians[size, v]:.1f})"
                for v in VARIANTS
            )
        )
    use_database(databases[LARGE])
    client = clients[LARGE]

    ticked = list(Ticket.objects.order_by("pk").values_list("pk", flat=True)[:TICKED])
    ids_ms, ids_queries, _ = time_action(
        client,
        {
            "action": "change_priority",
            "new_priority": "urgent",
            "_selected_action": [str(pk) for pk in ticked],
        },
    )
    all_ms, all_queries, all_job = time_action(
        client,
        {
            "action": "retry_failed",
            "select_across": "1",
            "_selected_action": [str(ticked[0])],
        },
        query="sync_state__exact=failed",
    )
    everything_ms, everything_queries, _ = time_action(
        client,
        {
            "action": "export_csv",
            "select_across": "1",
            "_selected_action": [str(ticked[0])],
        },
    )
    print(f"bulk action, {TICKED} ticked: answered in {ids_ms:.0f} ms with {ids_queries} queries")
    print(f"bulk action, select all failed ({SELECTED}): {all_ms:.0f} ms, {all_queries} queries")
    print(f"bulk action, select all {LARGE}: {everything_ms:.0f} ms, {everything_queries} queries")

    # The worker side, in this process: walk the 10k job chunk by chunk (pushes go to Redis).
    BulkJob.objects.exclude(pk=all_job.pk).delete()
    started = time.perf_counter()
    while bulk.run_job(all_job.pk) == BulkJob.State.RUNNING:
        pass
    job_s = time.perf_counter() - started
    all_job.refresh_from_db()
    print(
        f"job over {all_job.total} tickets: {all_job.state} in {job_s:.1f} s "
        f"({all_job.succeeded} queued again, {all_job.skipped} skipped, {all_job.failed} failed)"
    )
    broker.flushdb()

    small_plain, large_plain = (queries[size][ADMIN_PLAIN] for size in (SMALL, LARGE))
    ratios = {v: medians[LARGE, v] / medians[SMALL, v] for v in VARIANTS}
    ratio = ratios[ADMIN_PLAIN]
    ok_queries = small_plain == large_plain <= 10
    small = SMALL
    body = "\n".join(
        [
            "## Ticket admin and staff list at scale",
            "",
            "`bench/admin_scale.py` on PostgreSQL (bulk_create seed, five accounts, mixed states; two "
            f"databases measured in alternation, median of {PAGE_RUNS} page loads each through Django's "
            "test client, logged in as a superuser, DEBUG on).",
            "",
            "| page | queries 1k / 100k | count shown 1k / 100k | ms at 1,000 (SQL) | ms at 100,000 (SQL) "
            "| 100k ÷ 1k, page (SQL) |",
            "|---|---|---|---|---|---|",
            *(
                f"| {PAGE_LABELS[v]} | {queries[SMALL][v]} / {queries[LARGE][v]} | {matches[SMALL][v]} / "
                f"{matches[LARGE][v]} | {medians[SMALL, v]:.1f} ({sql_medians[SMALL, v]:.1f}) | "
                f"{medians[LARGE, v]:.1f} ({sql_medians[LARGE, v]:.1f}) | {ratios[v]:.2f} "
                f"({sql_medians[LARGE, v] / sql_medians[SMALL, v]:.2f}) |"
                for v in VARIANTS
            ),
            "",
            f"Searches: the shared requester e-mail `{SEARCHES['email']}`, whole (matched exactly) and in "
            f"part (`{SEARCHES['email part']}`, a substring) find 1 ticket at 1,000 and 101 at 100,000, so "
            "the 100k page renders up to 100 rows in the admin and 25 in the staff list where the 1k page "
            f"renders one; the unique address `{UNIQUE_EMAIL}`, whole and in part "
            f"(`{SEARCHES['unique email part']}`), the title phrase `ticket 424 of` (quoted in the admin) "
            "and the exact reference `TC-B0000424` find 1 at both sizes: the same page, a bigger table. "
            "The admin splits a search into words (each must match); the staff list searches the whole "
            "phrase; both list exact matches (reference, remote id, remote number) first and compare a "
            "whole e-mail address exactly. A filtered or searched "
            'list counts at most 1,000 + 1 matches (`TICKET_LIST_COUNT_CAP`) and then says "more '
            "than 1,000\"; an unfiltered one takes PostgreSQL's row estimate. The filtered admin list "
            "shows 25 rows at 1,000 tickets and 100 at 100,000, so its times differ by rendering too. "
            "Load average while measuring: "
            f"{' / '.join(f'{load:.1f}' for load in os.getloadavg())} (2 cores, shared with other work).",
            "",
            f"- Queries the same at both sizes and ≤ 10: **{'yes' if ok_queries else 'NO'}** "
            f"({small_plain} / {large_plain}).",
            f"- Page time at {LARGE:,} ÷ at {small:,} (target ≤ 1.5): admin list **{ratio:.2f}**, staff "
            f"list **{ratios['staff', 'plain']:.2f}**; with the same matches at both sizes (whole unique "
            "e-mail / part of it / title phrase / reference): admin search "
            + " / ".join(f"**{ratios['admin', name]:.2f}**" for name in SAME_MATCHES)
            + ", staff search "
            + " / ".join(f"**{ratios['staff', name]:.2f}**" for name in SAME_MATCHES)
            + "; the shared "
            "e-mail, whose matches grow 1 → 101 (whole / part): admin "
            f"**{ratios['admin', 'email']:.2f}** / **{ratios['admin', 'email part']:.2f}**, staff "
            f"**{ratios['staff', 'email']:.2f}** / **{ratios['staff', 'email part']:.2f}**.",
            f'- A bulk action answers (target < 1 s): over the {SELECTED:,} failed tickets ("select all" '
            f"on the filtered list) in **{all_ms:.0f} ms** ({all_queries} queries); over all {LARGE:,} in "
            f"**{everything_ms:.0f} ms** ({everything_queries} queries); over {TICKED} ticked boxes in "
            f"**{ids_ms:.0f} ms** ({ids_queries} queries).",
            f"- The worker walks that {SELECTED:,}-ticket retry job (500-ticket chunks: one locked read and "
            f"one UPDATE each, one push message per ticket to Redis) in **{job_s:.1f} s** "
            f"({all_job.succeeded:,} queued again), run in-process.",
        ]
    )
    print(f"ratio {ratio:.2f}; queries ok: {ok_queries}")
    record("admin-scale", body)


if __name__ == "__main__":
    main()
