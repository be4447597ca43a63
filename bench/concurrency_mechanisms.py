"""Concurrency mechanism for the batched push: threads, gevent and asyncio, measured side by side.

Issue #10 asks for bounded concurrency per account "by measuring" the mechanism. In a throwaway
SQLite database and state directory (never the developer's var/), with the sandbox in its own
process answering every request `--latency-ms` later, `--calls` Kapture update calls (the
adapter's own payload, URL and headers: `KaptureProvider.build_update`, its Basic token, the
console's User-Agent) are made with 16 in flight, by each mechanism in a subprocess of its own:

- sequential: one requests.Session, one call after another (the reference);
- threads: 16 threads, each with its own requests.Session;
- gevent: 16 greenlets (gevent.pool.Pool), each with its own requests.Session, with the
  process monkey-patched before anything else is imported;
- httpx: asyncio with one httpx.AsyncClient (at most 16 connections) and an asyncio.Semaphore(16);
- aiohttp: asyncio the same way, with one aiohttp.ClientSession (a TCPConnector of 16);
- threads, adapter / gevent, adapter: the same 16 threads or greenlets, each calling
  `provider.update(ticket)` through the console's adapter and HTTP client (request record,
  redaction, the address-checking transport, the account's one shared Session), as the
  engine's sender threads do; asyncio cannot run that synchronous code.

Each subprocess makes a warm-up (2 calls per worker) and then times the calls; it reports the
wall time, its own CPU (getrusage: user + system, every thread) and the sandbox's (/proc) over
the timed calls. The mechanisms run in turn, `--rounds` times (A B C A B C), and the report
gives each one's median, and its calls/s as a ratio of the threads' in the same round.

httpx is the asyncio client the console would pick: it is the async twin of what the adapters
are written against (requests-like Client/AsyncClient, a transport class where the address
check of providers/transport.py could live), pure Python with three small dependencies.
aiohttp runs beside it because it is the cheaper client per call, so asyncio is not judged by
httpx alone.

Run: .venv/bin/python bench/concurrency_mechanisms.py [--calls 1000] [--latency-ms 50 0] [--rounds 2]
Needs the bench-only packages: .venv/bin/pip install -r bench/requirements-mechanisms.txt
"""

from __future__ import annotations

import sys

# gevent must patch the standard library before anything imports it (threading, socket, ssl).
if (
    __name__ == "__main__"
    and sys.argv[1:2] == ["--run"]
    and sys.argv[2:3] in (["gevent"], ["gevent-adapter"])
):
    from gevent import monkey

    monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from importlib.util import find_spec  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

IN_FLIGHT = 16
WARM_UP_PER_WORKER = 2
REMOTE_TICKETS = 100  # the updates cycle over this many tickets created at the sandbox first
MECHANISMS = ["sequential", "threads", "gevent", "httpx", "aiohttp", "threads-adapter", "gevent-adapter"]
NAMES = {
    "sequential": "sequential (1 `requests.Session`)",
    "threads": f"threads ({IN_FLIGHT}, a `requests.Session` each)",
    "gevent": f"gevent ({IN_FLIGHT} greenlets, a `requests.Session` each)",
    "httpx": f"asyncio (`httpx.AsyncClient`, semaphore {IN_FLIGHT})",
    "aiohttp": f"asyncio (`aiohttp.ClientSession`, semaphore {IN_FLIGHT})",
    "threads-adapter": f"threads, adapter ({IN_FLIGHT}, `provider.update`)",
    "gevent-adapter": f"gevent, adapter ({IN_FLIGHT} greenlets, `provider.update`)",
}
NEEDS = {"gevent": ("gevent",), "gevent-adapter": ("gevent",), "httpx": ("httpx",), "aiohttp": ("aiohttp",)}
INSTALL = ".venv/bin/pip install -r bench/requirements-mechanisms.txt"


# --- the driver: one measuring process per latency --------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[50.0, 0.0])
    parser.add_argument("--rounds", type=int, default=2, help="each mechanism runs this many times, in turn")
    parser.add_argument("--mechanisms", default=",".join(MECHANISMS))
    parser.add_argument("--no-record", action="store_true", help="print the figures, leave docs/ alone")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)  # internal
    parser.add_argument("--run", help=argparse.SUPPRESS)  # internal: one mechanism, here
    parser.add_argument("--job", help=argparse.SUPPRESS)  # internal: the calls to make
    args = parser.parse_args()
    mechanisms = args.mechanisms.split(",")
    if args.run:
        print(json.dumps(run_mechanism(args.run, json.loads(Path(args.job).read_text()))))
        return
    if args.measure:
        print(json.dumps(measure(args.calls, args.latency_ms[0], args.rounds, mechanisms)))
        return
    missing = sorted({module for m in mechanisms for module in NEEDS.get(m, ()) if find_spec(module) is None})
    if missing:
        sys.exit(
            f"This bench needs {', '.join(missing)}, which the console does not install. "
            f"Install the bench's pinned packages with:\n    {INSTALL}"
        )
    results = {}
    for latency_ms in args.latency_ms:
        results[latency_ms] = measure_latency(args.calls, latency_ms, args.rounds, mechanisms)
        print(f"{latency_ms:g} ms", json.dumps(results[latency_ms]), flush=True)
    body = report(results, args.calls, args.rounds)
    print(body)
    if not args.no_record:
        from bench.report import record

        record("concurrency-mechanisms", body)


def measure_latency(calls: int, latency_ms: float, rounds: int, mechanisms: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="mechanisms-bench-") as state:
        env = {**os.environ, "CONSOLE_STATE_DIR": state, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        for name in ("DATABASE_URL", "CELERY_BROKER_URL"):
            env.pop(name, None)
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--measure",
                "--calls",
                str(calls),
                "--latency-ms",
                str(latency_ms),
                "--rounds",
                str(rounds),
                "--mechanisms",
                ",".join(mechanisms),
            ],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            check=True,
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- one latency: the sandbox, the calls, every mechanism in turn -----------------------------
def measure(calls: int, latency_ms: float, rounds: int, mechanisms: list[str]) -> dict:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from bench.sync_throughput import kapture_account, start_sandbox

    call_command("migrate", verbosity=0)
    state = Path(settings.STATE_DIR)
    sandbox, base_url = start_sandbox(state, latency_ms)  # allow-lists it for the subprocesses too
    runs: list[dict] = []
    try:
        account = kapture_account(base_url)
        job = state / "job.json"
        job.write_text(json.dumps({**the_calls(account, calls), "sandbox_pid": sandbox.pid}))
        for round_number in range(rounds):
            for mechanism in mechanisms:
                done = subprocess.run(
                    [sys.executable, __file__, "--run", mechanism, "--job", str(job)],
                    cwd=ROOT,
                    stdout=subprocess.PIPE,
                    text=True,
                    check=True,
                )
                figures = json.loads(done.stdout.strip().splitlines()[-1])
                runs.append({"mechanism": mechanism, "round": round_number, **figures})
                print(mechanism, json.dumps(figures), file=sys.stderr, flush=True)
    finally:
        sandbox.terminate()
        try:
            sandbox.wait(20)
        except subprocess.TimeoutExpired:
            sandbox.kill()
    return {"latency_ms": latency_ms, "calls": calls, "runs": runs, "load_average": os.getloadavg()}


def the_calls(account, calls: int) -> dict:
    """Create REMOTE_TICKETS tickets at the sandbox, then build the adapter's update of each
    call: its URL, headers (auth, User-Agent) and payload."""
    from django.conf import settings

    from tickets.models import Ticket

    provider = account.get_provider()
    remote_ids = []
    for number in range(min(calls, REMOTE_TICKETS)):
        ticket = Ticket(account=account, title=f"Bench mechanisms #{number}", description="Bench ticket.")
        ticket.reference = f"TC-MECH{number:06d}"
        remote_ids.append(provider.create(ticket).remote_id)
    statuses = ["open", "in_progress", "on_hold", "resolved"]
    tickets = [
        {"remote_id": remote_ids[n % len(remote_ids)], "status": statuses[n % len(statuses)]}
        for n in range(calls + IN_FLIGHT * WARM_UP_PER_WORKER)
    ]
    request = provider.build_update(Ticket(account=account, **tickets[0]))
    provider.authorize(request)
    return {
        "account_id": account.pk,
        "url": provider.http.url_for(request),
        "headers": {**request.headers, "User-Agent": settings.PROVIDER_USER_AGENT},
        "timeout": account.timeout,
        "tickets": tickets,
        "payloads": [provider.build_update(Ticket(account=account, **t)).json for t in tickets],
        "warm_up": IN_FLIGHT * WARM_UP_PER_WORKER,
    }


# --- one mechanism, in its own process ---------------------------------------------------------
def run_mechanism(mechanism: str, job: dict) -> dict:
    warm_up = job["warm_up"]
    if mechanism.endswith("-adapter"):
        work = adapter_work(job)
    else:
        work = job["payloads"]
    run = RUNNERS[mechanism]
    run(job, work[:warm_up])
    sandbox_before, usage_before = cpu_ticks(job["sandbox_pid"]), resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    extra = run(job, work[warm_up:]) or {}
    wall = time.perf_counter() - started
    usage, sandbox_after = resource.getrusage(resource.RUSAGE_SELF), cpu_ticks(job["sandbox_pid"])
    calls = len(work) - warm_up
    client_s = (usage.ru_utime - usage_before.ru_utime) + (usage.ru_stime - usage_before.ru_stime)
    sandbox_s = (sandbox_after - sandbox_before) / os.sysconf("SC_CLK_TCK")
    return {
        "calls": calls,
        "wall_s": round(wall, 3),
        "calls_per_s": round(calls / wall, 1),
        "client_cpu_ms": round(client_s * 1000 / calls, 3),
        "sandbox_cpu_ms": round(sandbox_s * 1000 / calls, 3),
        "load_1min": round(os.getloadavg()[0], 2),
        **extra,
    }


def cpu_ticks(pid: int) -> int:
    """User + system CPU ticks of `pid`, all its threads."""
    from bench.sync_throughput import proc_stat

    return proc_stat(pid)[2]


def check(status: int, data) -> None:
    if status != 200 or not isinstance(data, dict) or data.get("status") != "success":
        raise RuntimeError(f"the sandbox did not accept an update: HTTP {status} {data!r}"[:300])


def post_with(session, job: dict, payload) -> None:
    answer = session.post(job["url"], json=payload, headers=job["headers"], timeout=job["timeout"])
    check(answer.status_code, answer.json())


def run_sequential(job: dict, payloads: list) -> None:
    import requests

    session = requests.Session()
    for payload in payloads:
        post_with(session, job, payload)


def run_threads(job: dict, payloads: list) -> None:
    import threading

    import requests

    todo = iter(payloads)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        session = requests.Session()
        try:
            while True:
                with lock:
                    payload = next(todo, None)
                if payload is None:
                    return
                post_with(session, job, payload)
        except Exception as exc:  # noqa: BLE001 - re-raised below, in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(IN_FLIGHT)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def run_gevent(job: dict, payloads: list) -> None:
    import requests
    from gevent.pool import Pool

    todo = iter(payloads)  # greenlets switch only on I/O: no lock needed around next()

    def worker() -> None:
        session = requests.Session()
        for payload in todo:
            post_with(session, job, payload)

    pool = Pool(IN_FLIGHT)
    greenlets = [pool.spawn(worker) for _ in range(IN_FLIGHT)]
    pool.join(raise_error=True)
    for greenlet in greenlets:
        greenlet.get()


def run_httpx(job: dict, payloads: list) -> None:
    import asyncio

    import httpx

    async def all_calls() -> None:
        limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
        async with httpx.AsyncClient(limits=limits, timeout=job["timeout"]) as client:
            gate = asyncio.Semaphore(IN_FLIGHT)

            async def one(payload) -> None:
                async with gate:
                    answer = await client.post(job["url"], json=payload, headers=job["headers"])
                check(answer.status_code, answer.json())

            await asyncio.gather(*(one(payload) for payload in payloads))

    asyncio.run(all_calls())


def run_aiohttp(job: dict, payloads: list) -> None:
    import asyncio

    import aiohttp

    async def all_calls() -> None:
        connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
        timeout = aiohttp.ClientTimeout(total=job["timeout"])
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            gate = asyncio.Semaphore(IN_FLIGHT)

            async def one(payload) -> None:
                async with gate, session.post(job["url"], json=payload, headers=job["headers"]) as answer:
                    check(answer.status, await answer.json())

            await asyncio.gather(*(one(payload) for payload in payloads))

    asyncio.run(all_calls())


# --- through the console's adapter (threads or greenlets) ------------------------------------
def adapter_work(job: dict) -> list:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    django.setup()
    from providers.models import ProviderAccount
    from tickets.models import Ticket

    account = ProviderAccount.objects.get(pk=job["account_id"])
    job["account"] = account
    return [Ticket(account=account, **ticket) for ticket in job["tickets"]]


class PoolFullCounter:
    """Counts urllib3's "Connection pool is full, discarding connection" warnings: a Session's
    pool keeps 10 idle connections per host by default, fewer than 16 in flight."""

    def __init__(self) -> None:
        import logging

        self.count = 0
        counter = self

        class Handler(logging.Handler):
            def emit(self, record) -> None:
                if "pool is full" in record.getMessage():
                    counter.count += 1

        self.logger = logging.getLogger("urllib3.connectionpool")
        self.handler = Handler(logging.WARNING)
        self.logger.addHandler(self.handler)
        self.logger.propagate = False  # counted, not printed


def run_adapter(job: dict, tickets: list, spawn_and_join) -> dict:
    account = job["account"]
    counter = PoolFullCounter()
    todo = iter(tickets)
    lock = _lock()
    errors: list[BaseException] = []

    def worker() -> None:
        provider = account.get_provider()  # one per worker; the Session is the account's (session_for)
        try:
            while True:
                with lock:
                    ticket = next(todo, None)
                if ticket is None:
                    return
                provider.update(ticket)  # raises on anything but success
        except Exception as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    from providers.transport import CheckedConnectionMixin

    opened = []
    new_conn = CheckedConnectionMixin._new_conn

    def counted_new_conn(connection):
        opened.append(1)
        return new_conn(connection)

    CheckedConnectionMixin._new_conn = counted_new_conn
    try:
        spawn_and_join(worker)
    finally:
        CheckedConnectionMixin._new_conn = new_conn
        counter.logger.removeHandler(counter.handler)
    if errors:
        raise errors[0]
    return {"pool_full_discards": counter.count, "connections_opened": len(opened)}


def _lock():
    import threading  # gevent-patched in a gevent process

    return threading.Lock()


def threads_join(worker) -> None:
    import threading

    threads = [threading.Thread(target=worker) for _ in range(IN_FLIGHT)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def greenlets_join(worker) -> None:
    from gevent.pool import Pool

    pool = Pool(IN_FLIGHT)
    for _ in range(IN_FLIGHT):
        pool.spawn(worker)
    pool.join(raise_error=True)


RUNNERS = {
    "sequential": run_sequential,
    "threads": run_threads,
    "gevent": run_gevent,
    "httpx": run_httpx,
    "aiohttp": run_aiohttp,
    "threads-adapter": lambda job, tickets: run_adapter(job, tickets, threads_join),
    "gevent-adapter": lambda job, tickets: run_adapter(job, tickets, greenlets_join),
}


# --- the report -----------------------------------------------------------------------------------
def summary(runs: list[dict]) -> dict[str, dict]:
    """Per mechanism: the median of its runs, and its calls/s over the threads' in the same round."""
    threads_in_round = {r["round"]: r["calls_per_s"] for r in runs if r["mechanism"] == "threads"}
    rows: dict[str, dict] = {}
    for mechanism in dict.fromkeys(r["mechanism"] for r in runs):
        mine = [r for r in runs if r["mechanism"] == mechanism]
        row = {
            key: statistics.median(r[key] for r in mine)
            for key in ("wall_s", "calls_per_s", "client_cpu_ms", "sandbox_cpu_ms", "load_1min")
        }
        ratios = [
            r["calls_per_s"] / threads_in_round[r["round"]] for r in mine if r["round"] in threads_in_round
        ]
        row["vs_threads"] = statistics.median(ratios) if ratios else None
        row["runs"] = len(mine)
        row["spread_calls_per_s"] = (min(r["calls_per_s"] for r in mine), max(r["calls_per_s"] for r in mine))
        for key in ("pool_full_discards", "connections_opened"):
            if key in mine[0]:
                row[key] = statistics.median(r[key] for r in mine)
        rows[mechanism] = row
    return rows


def report(results: dict[float, dict], calls: int, rounds: int) -> str:
    lines = [
        "## Concurrency mechanism for the batched push",
        "",
        f"`bench/concurrency_mechanisms.py --calls {calls} --rounds {rounds}`: {calls} Kapture update calls "
        "(the adapter's payload, URL, token and User-Agent) against the sandbox in its own process, answering "
        f"each request after the latency shown; {IN_FLIGHT} in flight except the sequential reference. Each "
        "mechanism runs in its own subprocess (gevent monkey-patches before any import), after a warm-up of "
        f"{WARM_UP_PER_WORKER} calls per worker; the mechanisms run in turn, {rounds} times (A B C … A B C …), "
        "and each figure is the median of its runs. *vs threads*: calls/s over the threads' in the same round "
        "(median of the rounds). *CPU ms per call*: user + system of the client process (getrusage, all "
        "threads) and of the sandbox (/proc), over the timed calls. The *adapter* rows call "
        "`provider.update(ticket)` through the console's HTTP client (request record, redaction, the "
        "address-checking transport, the account's one shared Session), as the engine's sender threads do; "
        "the others post the same request with a bare client. *Load*: the 1-minute load average at the end "
        "of each run (median); this machine has 2 cores, shared with other work.",
        "",
        "| latency | mechanism | wall s | calls/s (min–max) | vs threads | client CPU ms/call | "
        "sandbox CPU ms/call | load (1 min) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    discards = []
    for latency_ms, result in results.items():
        for mechanism, row in summary(result["runs"]).items():
            low, high = row["spread_calls_per_s"]
            ratio = f"{row['vs_threads']:.2f}" if row["vs_threads"] is not None else "-"
            lines.append(
                f"| {float(latency_ms):g} ms | {NAMES.get(mechanism, mechanism)} | {row['wall_s']:.2f} | "
                f"{row['calls_per_s']:.0f} ({low:.0f}–{high:.0f}) | {ratio} | {row['client_cpu_ms']:.2f} | "
                f"{row['sandbox_cpu_ms']:.2f} | {row['load_1min']:.2f} |"
            )
            if "connections_opened" in row:
                discards.append(
                    f"{NAMES[mechanism]} at {float(latency_ms):g} ms: {row['connections_opened']:g} opened, "
                    f"{row['pool_full_discards']:g} discarded"
                )
        one, five, fifteen = result["load_average"]
        lines.append(
            f"| {float(latency_ms):g} ms | *load average at the end* | {one:.2f} / {five:.2f} / {fifteen:.2f} |||||"
        )
    if discards:
        lines += [
            "",
            "Connections the adapter rows' one shared Session opened over the timed calls, and closed on "
            "return because its pool already held as many idle ones as it keeps (median per run): "
            + "; ".join(discards)
            + ". The pool bounds idle connections, not busy ones: with fewer kept than calls in flight, the "
            "connections idle at once when a run ends are cut back, and the next run reopens them.",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
