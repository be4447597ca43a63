"""Sync throughput: end-to-end creates per second against a raw HTTP loop, and worker memory.

For each broker setup, in a throwaway database and state directory (never the developer's
var/):
- raw: one requests.Session posting Kapture create payloads (built by the adapter, as the
  worker sends them) to the sandbox, one after another;
- end to end: the same number of tickets through services.create_ticket -> broker -> one worker
  of 2 processes (prefork, as `manage.py runconsole` starts it) -> sandbox -> row synced, timed
  from the first save to the last synced row; reported as creates per second and as a ratio of
  the raw loop;
- memory: the worker pool children's VmRSS after a warm-up of 1,000 creates and after
  `--rss-tasks` creates in all (children are not recycled during the run, so growth shows).

Setups: "redis" (PostgreSQL + Redis, scaled out) and "embedded" (SQLite + the embedded
sqla+sqlite broker). The sandbox runs as its own process; `--latency-ms` makes it answer every
request that much later, as a provider across the internet does (both loops pay it).

Also reported: how fast `services.create_ticket` itself saves and publishes while the workers
run. End to end cannot be faster than that, whatever the workers do.

Run: .venv/bin/python bench/sync_throughput.py [--tickets 2000] [--rss-tasks 20000]
     [--setups redis,embedded] [--latency-ms 0]
     (each run records the setups it measured; --tickets 0 measures memory only; to record
     figures of separate runs together: --report-from LOG... with the runs' printed output,
     later runs' figures winning field by field)
Env: BENCH_POSTGRES_URL (a server to create a throwaway database on; default
     postgres://postgres@127.0.0.1:5432/postgres), BENCH_REDIS_URL (a Redis database the bench
     may flush; default redis://127.0.0.1:6379/13).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.report import record  # noqa: E402
from console.worker_command import worker_command  # noqa: E402

WORKERS = 2
WARM_UP = 50
RSS_BASELINE_TASKS = 1000


# --- the driver: one subprocess per setup ---------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=2000)
    parser.add_argument("--rss-tasks", type=int, default=20000)
    parser.add_argument("--setups", default="redis,embedded")
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="the sandbox answers each request this much later"
    )
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # internal: run one setup here
    parser.add_argument("--serve-sandbox", type=int, help=argparse.SUPPRESS)  # internal: on this port
    parser.add_argument(
        "--report-from",
        nargs="+",
        metavar="LOG",
        help="record the figures printed by earlier runs instead of measuring",
    )
    args = parser.parse_args()
    if args.report_from:
        results = {}
        for log in args.report_from:
            for line in Path(log).read_text().splitlines():
                setup, _, figures = line.partition(" ")
                if figures.startswith("{"):  # later runs' figures win, field by field
                    results.setdefault(setup, {}).update(json.loads(figures))
        record("sync-throughput", report(results, args.tickets, args.rss_tasks))
        return
    if args.serve_sandbox:
        serve_sandbox(args.serve_sandbox, args.latency_ms)
        return
    if args.measure:
        print(json.dumps(measure(args.measure, args.tickets, args.rss_tasks, args.latency_ms)))
        return
    results = {}
    for setup in args.setups.split(","):
        key = f"{setup}@{args.latency_ms:g}ms" if args.latency_ms else setup
        results[key] = run_setup(setup, args.tickets, args.rss_tasks, args.latency_ms)
        print(key, json.dumps(results[key]), flush=True)
    if args.tickets:  # a memory-only run (--tickets 0) is recorded with --report-from
        record("sync-throughput", report(results, args.tickets, args.rss_tasks))


def run_setup(setup: str, tickets: int, rss_tasks: int, latency_ms: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="sync-bench-") as state:
        env = {
            **os.environ,
            "CONSOLE_STATE_DIR": state,
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            # Children keep running for the whole bench, so memory growth is visible.
            "CELERY_WORKER_MAX_TASKS_PER_CHILD": "1000000",
        }
        env.pop("DATABASE_URL", None)
        database = None
        if setup.startswith("redis"):
            database = f"console_bench_{os.getpid()}"
            server = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
            admin_sql(server, f'CREATE DATABASE "{database}"')
            env["DATABASE_URL"] = urlunsplit(urlsplit(server)._replace(path=f"/{database}"))
            env["CELERY_BROKER_URL"] = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
        else:
            env["CELERY_BROKER_URL"] = f"sqla+sqlite:///{state}/broker.sqlite3"
        try:
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--measure",
                    setup,
                    "--tickets",
                    str(tickets),
                    "--rss-tasks",
                    str(rss_tasks),
                    "--latency-ms",
                    str(latency_ms),
                ],
                env=env,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                text=True,
                check=True,
            )
        finally:
            if database:
                admin_sql(server, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        return json.loads(done.stdout.strip().splitlines()[-1])


def admin_sql(server_url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(statement)


# --- one setup, inside its own environment ----------------------------------------------------
def measure(setup: str, tickets: int, rss_tasks: int, latency_ms: float = 0.0) -> dict:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if settings.CELERY_BROKER_URL.startswith("redis://"):
        import redis

        redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    log_dir = Path(os.environ.get("BENCH_LOG_DIR") or settings.STATE_DIR)
    log_dir.mkdir(parents=True, exist_ok=True)
    sandbox, base_url = start_sandbox(log_dir, latency_ms)
    workers: list[subprocess.Popen] = []
    try:
        account = kapture_account(base_url)
        figures = {}
        if tickets:  # 0: memory only
            cpu = CpuMeter(sandbox=[sandbox.pid])
            raw_per_s = raw_loop(account, tickets)
            raw_cpu = cpu.per_item(tickets)
            print(f"{setup}: raw loop {raw_per_s:.0f} creates/s", file=sys.stderr, flush=True)
        workers = start_workers(log_dir)
        through(account, WARM_UP, prefix="warm-up")
        if tickets:
            cpu = CpuMeter(sandbox=[sandbox.pid], workers=[w.pid for w in workers])
            saving, total = through(account, tickets, prefix="timed", timed_saves=True)
            e2e_cpu = cpu.per_item(tickets)
            e2e_per_s, saves_per_s = tickets / total, tickets / saving
            print(
                f"{setup}: end to end {e2e_per_s:.1f} creates/s (saves {saves_per_s:.0f}/s)",
                file=sys.stderr,
                flush=True,
            )
            figures = {
                "raw_per_s": raw_per_s,
                "e2e_per_s": e2e_per_s,
                "ratio": e2e_per_s / raw_per_s,
                "saves_per_s": saves_per_s,
                "latency_ms": latency_ms,
                "raw_cpu_ms": raw_cpu,
                "e2e_cpu_ms": e2e_cpu,
                "load_average": round(os.getloadavg()[1], 1),
            }
        memory = worker_memory(account, workers, rss_tasks) if rss_tasks else {}
    finally:
        for process in [*workers, sandbox]:
            process.terminate()
        for process in [*workers, sandbox]:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
    return {**figures, **memory}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_sandbox(log_dir: Path, latency_ms: float = 0.0) -> tuple[subprocess.Popen, str]:
    import requests

    from providers.egress import allow_in_this_run
    from providers.sandbox.credentials import load_or_create

    load_or_create()  # written before the sandbox reads it
    port = free_port()
    allow_in_this_run(f"127.0.0.1:{port}")  # loopback: this process and the workers started later
    log = open(log_dir / "sandbox.log", "wb")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve-sandbox", str(port), "--latency-ms", str(latency_ms)],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(f"{url}/_sandbox/health", timeout=1).raise_for_status()
            return process, url
        except requests.RequestException:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError((log_dir / "sandbox.log").read_text()) from None
            time.sleep(0.2)


def serve_sandbox(port: int, latency_ms: float = 0.0) -> None:
    """`manage.py runsandbox`, but answering without Nagle's delay.

    The stock handler writes headers and body in two sends; on a kept-alive connection the
    second waits for the client's delayed ACK, about 40 ms per request (2026-11: measured
    21 requests/s against 226 with TCP_NODELAY). Real providers do not pay that, so the
    bench switches it off rather than measure it.

    `latency_ms` delays every answer (the sandbox serves each connection in its own thread,
    so delays overlap as they would at a real provider).
    """
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    django.setup()
    from providers.sandbox.credentials import load_or_create
    from providers.sandbox.server import SandboxHandler, SandboxServer, all_emulators

    SandboxHandler.disable_nagle_algorithm = True
    if latency_ms:
        dispatch = SandboxHandler.dispatch

        def dispatch_later(handler):
            time.sleep(latency_ms / 1000)
            dispatch(handler)

        SandboxHandler.dispatch = dispatch_later
    SandboxServer(("127.0.0.1", port), all_emulators(load_or_create())).serve_forever()


def kapture_account(base_url: str):
    from providers.kapture import KaptureProvider
    from providers.models import ProviderAccount
    from providers.sandbox.credentials import load_or_create

    account = ProviderAccount(
        name="Bench Kapture",
        kind="kapture",
        base_url=f"{base_url}/kapture",
        settings=dict(getattr(KaptureProvider, "demo_settings", {})),
        status_map=KaptureProvider.default_status_map,
        priority_map=KaptureProvider.default_priority_map,
        # The shared limiter stays in the path (one compare-and-swap per call) but never waits.
        rate_limit=100000,
        timeout=10,
    )
    account.set_credentials(load_or_create()["kapture"])
    account.save()
    return account


def ticket_fields(number: int, prefix: str) -> dict:
    return {
        "title": f"Bench {prefix} #{number}",
        "description": f"Throughput run, ticket {number}.",
        "requester_email": f"user{number}@example.com",
    }


def raw_loop(account, count: int) -> float:
    """Creates per second of a bare Session posting what the adapter would post."""
    import requests

    from tickets.models import Ticket

    provider = account.get_provider()
    payloads = []
    for number in range(count + WARM_UP):
        ticket = Ticket(account=account, **ticket_fields(number, "raw"))
        ticket.reference = f"TC-RAW{number:06d}"
        payloads.append(provider.build_create(ticket).json)
    url = f"{account.base_url}{provider.CREATE_PATH}"
    headers = {"Authorization": f"Basic {account.get_credentials()['token']}"}
    session = requests.Session()
    for payload in payloads[:WARM_UP]:
        session.post(url, json=payload, headers=headers, timeout=10).raise_for_status()
    started = time.perf_counter()
    for payload in payloads[WARM_UP:]:
        answer = session.post(url, json=payload, headers=headers, timeout=10)
        answer.raise_for_status()
        assert answer.json()["status"] == "success", answer.text
    return count / (time.perf_counter() - started)


def launch_worker(log_path: Path, *, concurrency: int, name: str) -> subprocess.Popen:
    """A Celery worker of the console's app, logging to `log_path` (also used by bulk_status.py)."""
    log = open(log_path, "wb")  # noqa: SIM115 - lives with the process
    return subprocess.Popen(
        worker_command(name, concurrency=concurrency),
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_ready(process: subprocess.Popen, log_path: Path, deadline: float) -> None:
    while b" ready." not in log_path.read_bytes():
        if time.monotonic() > deadline or process.poll() is not None:
            log_tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the worker of {log_path.name} did not start; its log ends:\n{log_tail}")
        time.sleep(0.1)


def start_workers(log_dir: Path) -> list[subprocess.Popen]:
    """One worker of WORKERS pool processes, as `manage.py runconsole` starts it."""
    log = log_dir / "worker.log"
    worker = launch_worker(log, concurrency=WORKERS, name="bench")
    wait_ready(worker, log, time.monotonic() + 90)
    return [worker]


def through(account, count: int, *, prefix: str, timed_saves: bool = False):
    """Seconds from the first save of `count` tickets to the last of them synced (with
    `timed_saves`: also the seconds the saves alone took, as (saving, total))."""
    from tickets import services
    from tickets.models import SyncState, Ticket

    started = time.perf_counter()
    ids = [services.create_ticket(account=account, **ticket_fields(n, prefix)).pk for n in range(count)]
    saving = time.perf_counter() - started
    first, last = min(ids), max(ids)
    mine = Ticket.objects.filter(pk__gte=first, pk__lte=last)
    deadline = time.monotonic() + 3600
    while mine.filter(sync_state=SyncState.SYNCED).count() < count:
        settled_badly = mine.exclude(sync_state__in=[SyncState.SYNCED, SyncState.PENDING, SyncState.SENDING])
        if settled_badly.exists():
            raise RuntimeError(f"a bench ticket did not sync: {settled_badly.first().last_error}")
        if time.monotonic() > deadline:
            raise RuntimeError("the bench tickets did not sync within an hour")
        time.sleep(0.05)
    total = time.perf_counter() - started
    return (saving, total) if timed_saves else total


class CpuMeter:
    """CPU time (user + system) each part spent from now on, per item, in milliseconds.

    Parts: this process (the raw client, or the create_ticket loop), the sandbox, the
    workers (their pool children included), and the database and broker servers found by
    process name (PostgreSQL backends, redis-server; SQLite and the embedded broker run
    inside the other processes)."""

    SERVERS = {"database": ("postgres",), "broker": ("redis-server",)}

    def __init__(self, *, sandbox: list[int], workers: list[int] = ()) -> None:
        self.groups = {"client": [os.getpid()], "sandbox": sandbox, "workers": list(workers)}
        self.start = self.sample()

    def sample(self) -> dict[str, dict[int, int]]:
        """CPU ticks of every process of each part, from one reading of /proc."""
        table = proc_table()
        parts = {name: set(pids) for name, pids in self.groups.items()}
        parts["workers"] |= children_in(table, set(self.groups["workers"]))
        for name, commands in self.SERVERS.items():
            parts[name] = {pid for pid, (_, command, _) in table.items() if command in commands}
        return {name: {pid: table[pid][2] for pid in pids if pid in table} for name, pids in parts.items()}

    def per_item(self, items: int) -> dict[str, float]:
        end, tick_ms = self.sample(), 1000 / os.sysconf("SC_CLK_TCK")
        spent = {}
        for name, ticks in end.items():
            total = sum(value - self.start.get(name, {}).get(pid, 0) for pid, value in ticks.items())
            spent[name] = round(total * tick_ms / items, 2)
        return spent


def proc_stat(pid: int) -> tuple[int, str, int]:
    """(parent pid, command name, CPU ticks user + system, all threads) of `pid`, from
    /proc/<pid>/stat ("pid (comm) state ppid ..."; comm may hold spaces and parentheses).
    Raises OSError when the process is gone."""
    head, _, rest = Path(f"/proc/{pid}/stat").read_text().rpartition(")")
    fields = rest.split()
    return int(fields[1]), head.partition("(")[2], int(fields[11]) + int(fields[12])


def proc_table() -> dict[int, tuple[int, str, int]]:
    """Every process: pid -> `proc_stat(pid)`."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                table[int(entry.name)] = proc_stat(int(entry.name))
            except OSError:
                continue  # exited meanwhile
    return table


def children_in(table: dict[int, tuple[int, str, int]], parents: set[int]) -> set[int]:
    return {pid for pid, (parent, _, _) in table.items() if parent in parents}


def pool_children(workers: list[subprocess.Popen]) -> list[int]:
    return sorted(children_in(proc_table(), {worker.pid for worker in workers}))


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def worker_memory(account, workers: list[subprocess.Popen], tasks: int) -> dict:
    """Pool children's RSS after a warm-up and after `tasks` creates in all (each one task)."""
    through(account, RSS_BASELINE_TASKS, prefix="rss-baseline")
    children = pool_children(workers)
    before = {pid: rss_kb(pid) for pid in children}
    through(account, tasks - RSS_BASELINE_TASKS, prefix="rss")
    after = {pid: rss_kb(pid) for pid in pool_children(workers)}
    recycled = set(before) != set(after)
    growth = [(after[pid] - before[pid]) / 1024 for pid in before if pid in after]
    return {
        "rss_tasks": tasks,
        "rss_before_mb": [round(before[pid] / 1024, 1) for pid in children],
        "rss_after_mb": [round(after.get(pid, 0) / 1024, 1) for pid in children],
        "rss_growth_mb": round(max(growth), 1) if growth else None,
        "children_recycled": recycled,
    }


# --- the report -------------------------------------------------------------------------------
def report(results: dict[str, dict], tickets: int, rss_tasks: int) -> str:
    names = {"redis": "PostgreSQL + Redis", "embedded": "SQLite + embedded broker (sqla+sqlite)"}
    lines = [
        "## Sync throughput",
        "",
        f"`bench/sync_throughput.py --tickets {tickets} --rss-tasks {rss_tasks} [--latency-ms N]`: Kapture "
        "creates against the sandbox (its own process, answering with TCP_NODELAY). *Raw*: one "
        "`requests.Session` posting the adapter's create payloads one after another. *End to end*: the "
        "same number of tickets through `services.create_ticket` → broker → one worker of "
        f"{WORKERS} processes (prefork, as `manage.py runconsole` starts it) → sandbox → row `synced`, from the first save to the last synced row. "
        "*Saves/s*: how fast that `create_ticket` loop itself ran (insert, reference, publish on "
        "commit) while the workers worked — end to end can never beat it, so saves/raw is the "
        "ceiling of the ratio on this machine. *Latency*: every sandbox answer delayed that much, "
        "as across the internet. Target: end to end ≥ 0.6 of raw; worker RSS growth < 20 MB.",
        "",
        "| setup | sandbox latency | raw creates/s | saves/s (ceiling) | end-to-end creates/s | ratio "
        "| ceiling ratio | worker children RSS before → after | growth | load avg (5 min) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, r in results.items():
        setup = key.partition("@")[0]
        rss = (
            f"{r['rss_before_mb']} → {r['rss_after_mb']} MB over {r['rss_tasks']:,} tasks"
            if "rss_tasks" in r
            else "not measured"
        )
        growth = f"{r['rss_growth_mb']} MB" if r.get("rss_growth_mb") is not None else "-"
        if "raw_per_s" not in r:  # a memory-only run
            lines.append(f"| {names.get(setup, setup)} | - | - | - | - | - | - | {rss} | {growth} | - |")
            continue
        saves = r.get("saves_per_s")
        ceiling = f"{saves / r['raw_per_s']:.2f}" if saves else "-"
        lines.append(
            f"| {names.get(setup, setup)} | {r.get('latency_ms', 0):g} ms | {r['raw_per_s']:.0f} | "
            f"{f'{saves:.0f}' if saves else '-'} | {r['e2e_per_s']:.1f} | {r['ratio']:.2f} | {ceiling} | "
            f"{rss} | {growth} | {r['load_average']} |"
        )
    lines += cpu_table(results, names)
    lines += [
        "",
        "Memory: pool children are not recycled during the run (CELERY_WORKER_MAX_TASKS_PER_CHILD "
        "raised for the bench), so growth is the children's own; RSS is measured after a 1,000-create "
        "warm-up and again at the end.",
    ]
    return "\n".join(lines)


def cpu_table(results: dict[str, dict], names: dict[str, str]) -> list[str]:
    """Where the CPU goes, per ticket: what bounds end to end on a machine of this size."""
    rows = [(key, r) for key, r in results.items() if "e2e_cpu_ms" in r]
    if not rows:
        return []
    cores = os.cpu_count() or 1
    parts = ["client", "workers", "sandbox", "database", "broker"]
    lines = [
        "",
        f"CPU per ticket in ms (user + system, all processes; this machine has {cores} cores). *client* "
        "is the raw loop's own process, or the process running `create_ticket`; SQLite and the "
        "embedded broker work inside the client and worker processes. *Most possible* is what the "
        "cores could do at that cost with nothing idle; *budget for 0.6* is the cost per ticket at "
        "which they could just reach 0.6 of raw.",
        "",
        "| setup | latency | loop | " + " | ".join(parts) + " | total | most possible /s | budget for 0.6 |",
        "|---|---|---|" + "---|" * len(parts) + "---|---|---|",
    ]
    for key, r in rows:
        setup = key.partition("@")[0]
        for loop, spent in (("raw", r["raw_cpu_ms"]), ("end to end", r["e2e_cpu_ms"])):
            total = sum(spent.values())
            most = cores * 1000 / total if total else 0
            budget = cores * 1000 / (0.6 * r["raw_per_s"]) if loop == "end to end" else None
            lines.append(
                f"| {names.get(setup, setup)} | {r.get('latency_ms', 0):g} ms | {loop} | "
                + " | ".join(f"{spent.get(part, 0):.2f}" for part in parts)
                + f" | {total:.2f} | {most:.0f} | {f'{budget:.2f} ms' if budget else '-'} |"
            )
    return lines


if __name__ == "__main__":
    main()
