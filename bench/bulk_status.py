"""Sync engine v2: a bulk "change status" and account isolation, against a raw 16-thread loop.

In a throwaway SQLite database, state directory and embedded broker (never the developer's
var/), with the sandbox in its own process answering every request `--latency-ms` later (as a
provider across the internet does) and one worker as the README runs it (prefork, 2 processes):
- raw: 16 threads, each with its own requests.Session, posting the Kapture adapter's update
  payloads for `--tickets` tickets to the sandbox;
- bulk: the same tickets, synced first, get one bulk "change status" (services.bulk_change_fields,
  500 per chunk as the bulk job runs it); timed from the change to the last row synced at its
  new revision; reported as updates/s and as a ratio of the raw loop, with CPU per ticket;
- isolation: 20 tickets of a healthy Kapture account, timed from their saves to the last
  synced, alone and then with 10 tickets queued first for a Knight account whose sandbox
  answers in 5 s (under its timeout); reported as the slowdown.

Run: .venv/bin/python bench/bulk_status.py [--tickets 1000] [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.report import record  # noqa: E402
from bench.sync_throughput import (  # noqa: E402
    CpuMeter,
    kapture_account,
    launch_worker,
    start_sandbox,
    ticket_fields,
    wait_ready,
)

RAW_THREADS = 16
WORKER_PROCESSES = 2
FAST_TICKETS, SLOW_TICKETS, SLOW_SECONDS = 20, 10, 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.tickets, args.latency_ms)))
        return
    with tempfile.TemporaryDirectory(prefix="bulk-bench-") as state:
        env = {
            **os.environ,
            "CONSOLE_STATE_DIR": state,
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "CELERY_BROKER_URL": f"sqla+sqlite:///{state}/broker.sqlite3",
        }
        env.pop("DATABASE_URL", None)
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--measure",
                "--tickets",
                str(args.tickets),
                "--latency-ms",
                str(args.latency_ms),
            ],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            check=True,
        )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(figures, indent=2))
    record("bulk-status", report(figures))


def measure(tickets: int, latency_ms: float) -> dict:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from providers.models import ProviderAccount

    call_command("migrate", verbosity=0)
    log_dir = Path(settings.STATE_DIR)
    sandbox, base_url = start_sandbox(log_dir, latency_ms)
    worker = None
    try:
        account = kapture_account(base_url)
        ProviderAccount.objects.filter(pk=account.pk).update(name="Bench bulk")  # the name is unique
        worker = start_worker(log_dir)
        # Isolation first, on a quiet worker: the bulk phase's creates publish a nudge each,
        # and the no-op ones still queued behind it would delay whatever is measured next.
        alone = isolation_run(base_url, slow=False)
        beside_slow = isolation_run(base_url, slow=True)
        ids = create_and_wait(account, tickets, "bulk")
        raw_per_s = raw_updates(account, ids)
        cpu = CpuMeter(sandbox=[sandbox.pid], workers=[worker.pid])
        bulk_seconds = bulk_change_status(ids)
        bulk_cpu = cpu.per_item(tickets)
    finally:
        for process in [worker, sandbox]:
            if process is not None:
                process.terminate()
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
    bulk_per_s = tickets / bulk_seconds
    return {
        "tickets": tickets,
        "latency_ms": latency_ms,
        "raw_per_s": raw_per_s,
        "bulk_per_s": bulk_per_s,
        "ratio": bulk_per_s / raw_per_s,
        "bulk_cpu_ms": bulk_cpu,
        "fast_alone_s": alone,
        "fast_beside_slow_s": beside_slow,
        "slowdown": beside_slow / alone,
        "load_average": round(os.getloadavg()[1], 1),
    }


def start_worker(log_dir: Path) -> subprocess.Popen:
    log_path = log_dir / "worker.log"
    worker = launch_worker(log_path, concurrency=WORKER_PROCESSES, name="bulkbench")
    wait_ready(worker, log_path, time.monotonic() + 90)
    return worker


def wait_synced(ids: list[int], *, at_revision: int | None = None) -> None:
    from tickets.models import SyncState, Ticket

    # This polling is counted as client CPU: read the ids as a pk range when they are one,
    # rather than as 1,000 parameters twice every 50 ms.
    mine = Ticket.objects.filter(pk__gte=min(ids), pk__lte=max(ids))
    if mine.count() != len(ids):
        mine = Ticket.objects.filter(pk__in=ids)
    rows = mine.filter(sync_state=SyncState.SYNCED)
    if at_revision is not None:
        rows = rows.filter(synced_revision__gte=at_revision)
    deadline = time.monotonic() + 1800
    polls = 0
    while rows.count() < len(ids):
        polls += 1
        if polls % 20 == 0:  # once a second: a row that will never sync
            bad = mine.exclude(sync_state__in=[SyncState.SYNCED, SyncState.PENDING, SyncState.SENDING])
            if bad.exists():
                raise RuntimeError(f"a bench ticket did not sync: {bad.first().last_error}")
        if time.monotonic() > deadline:
            raise RuntimeError("the bench tickets did not sync within 30 minutes")
        time.sleep(0.05)


def create_and_wait(account, count: int, prefix: str) -> list[int]:
    from tickets import services

    ids = [services.create_ticket(account=account, **ticket_fields(n, prefix)).pk for n in range(count)]
    wait_synced(ids)
    return ids


def raw_updates(account, ids: list[int]) -> float:
    """Updates per second of 16 threads posting what the adapter would post for these tickets."""
    import requests

    from tickets.models import Ticket

    provider = account.get_provider()
    tickets = list(Ticket.objects.filter(pk__in=ids).select_related("account"))
    payloads = [provider.build_update(ticket).json for ticket in tickets]
    url = f"{account.base_url}{provider.UPDATE_PATH}"
    headers = {"Authorization": f"Basic {account.get_credentials()['token']}"}
    lock = threading.Lock()

    def post_some() -> None:
        session = requests.Session()
        while True:
            with lock:
                if not payloads:
                    return
                payload = payloads.pop()
            session.post(url, json=payload, headers=headers, timeout=10).raise_for_status()

    started = time.perf_counter()
    threads = [threading.Thread(target=post_some) for _ in range(RAW_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(tickets) / (time.perf_counter() - started)


def bulk_change_status(ids: list[int]) -> float:
    from tickets import services
    from tickets.models import Ticket

    revision = max(Ticket.objects.filter(pk__in=ids).values_list("revision", flat=True)) + 1
    started = time.perf_counter()
    for start in range(0, len(ids), 500):
        services.bulk_change_fields(ticket_ids=ids[start : start + 500], changes={"status": "resolved"})
    wait_synced(ids, at_revision=revision)
    return time.perf_counter() - started


def isolation_run(base_url: str, *, slow: bool) -> float:
    """Seconds for FAST_TICKETS of a fresh healthy account to sync, optionally after
    SLOW_TICKETS were queued for an account whose sandbox answers in SLOW_SECONDS."""
    import requests

    from providers.knight import KnightProvider
    from providers.models import ProviderAccount
    from providers.sandbox.credentials import load_or_create
    from tickets import services

    label = "slow" if slow else "alone"
    fast = kapture_account(base_url)
    ProviderAccount.objects.filter(pk=fast.pk).update(name=f"Bench fast {label}")
    if slow:
        requests.post(
            f"{base_url}/_sandbox/faults",
            timeout=5,
            json={"rate": 1.0, "kinds": ["slow"], "slow_seconds": SLOW_SECONDS, "vendors": ["knight"]},
        )
        slow_account = ProviderAccount(
            name="Bench slow Knight",
            kind="knight",
            base_url=f"{base_url}/knight",
            settings=dict(KnightProvider.demo_settings),
            status_map=KnightProvider.default_status_map,
            priority_map=KnightProvider.default_priority_map,
            rate_limit=100000,
            timeout=10,
        )
        slow_account.set_credentials(load_or_create()["knight"])
        slow_account.save()
        slow_ids = [
            services.create_ticket(account=slow_account, **ticket_fields(n, "slow")).pk
            for n in range(SLOW_TICKETS)
        ]
    started = time.perf_counter()
    ids = [
        services.create_ticket(account=fast, **ticket_fields(n, f"fast-{label}")).pk
        for n in range(FAST_TICKETS)
    ]
    wait_synced(ids)
    seconds = time.perf_counter() - started
    if slow:  # let the slow account finish before anything else is measured
        wait_synced(slow_ids)
        requests.post(f"{base_url}/_sandbox/faults", timeout=5, json={"rate": 0.0})
    return seconds


def report(figures: dict) -> str:
    cpu = figures["bulk_cpu_ms"]
    return "\n".join(
        [
            "## Sync engine v2: bulk change of status, isolation",
            "",
            f"`bench/bulk_status.py --tickets {figures['tickets']} --latency-ms {figures['latency_ms']:g}`: "
            "SQLite + the embedded broker, one worker as the README runs it (prefork, 2 processes), the "
            f"sandbox in its own process answering each request {figures['latency_ms']:g} ms later. *Raw*: "
            f"{RAW_THREADS} threads, each with its own `requests.Session`, posting the Kapture adapter's "
            "update payloads. *Bulk*: the same synced tickets get one bulk change of status (chunks of 500, "
            "as the bulk job runs it), timed to the last row synced at its new revision. *Isolation*: "
            f"{FAST_TICKETS} tickets of a healthy Kapture account, from their saves to the last synced, alone "
            f"and with {SLOW_TICKETS} tickets queued first for a Knight account answering in {SLOW_SECONDS} s.",
            "",
            "| tickets | latency | raw updates/s | bulk updates/s | ratio | CPU ms per ticket (client / workers / "
            "sandbox / total) | fast account alone | beside the slow one | slowdown | load avg (5 min) |",
            "|---|---|---|---|---|---|---|---|---|---|",
            f"| {figures['tickets']} | {figures['latency_ms']:g} ms | {figures['raw_per_s']:.0f} | "
            f"{figures['bulk_per_s']:.0f} | {figures['ratio']:.2f} | {cpu['client']} / {cpu['workers']} / "
            f"{cpu['sandbox']} / {sum(cpu.values()):.2f} | {figures['fast_alone_s']:.2f} s | "
            f"{figures['fast_beside_slow_s']:.2f} s | {figures['slowdown']:.2f}x | {figures['load_average']} |",
        ]
    )


if __name__ == "__main__":
    main()
