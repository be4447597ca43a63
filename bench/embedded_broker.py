"""Embedded broker choice: kombu's SQLAlchemy transport on SQLite vs its filesystem transport.

For each: publish rate (one process publishing N tasks), drain time with one worker process
and with two, and deliveries (duplicates and losses) with two workers competing.
Run: .venv/bin/python bench/embedded_broker.py [N [DEEP_N]]  (DEEP_N: a deeper queue, 2 workers)
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.report import record  # noqa: E402
from console.worker_command import worker_command  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def transports(base: Path) -> dict[str, dict[str, str]]:
    """Both transports poll at the console's interval (console/broker.py), so they compare."""
    from console.broker import EmbeddedSQLiteTransport

    interval = EmbeddedSQLiteTransport.polling_interval
    (base / "fs-in").mkdir()
    return {
        "sqla+sqlite": {"BENCH_BROKER_URL": f"sqla+sqlite:///{base / 'broker.sqlite3'}"},
        "filesystem": {
            "BENCH_BROKER_URL": "filesystem://",
            "BENCH_TRANSPORT_OPTIONS": (
                f"data_folder_in={base / 'fs-in'};data_folder_out={base / 'fs-in'};"
                f"control_folder={base / 'control'};polling_interval={interval}"
            ),
        },
    }


def run(name: str, env_extra: dict[str, str], count: int, workers: int, base: Path) -> dict:
    out = base / f"out-{name}-{workers}"
    out.mkdir()
    env = {**os.environ, **env_extra, "BENCH_OUT": str(out), "PYTHONPATH": str(ROOT)}
    publish = (
        "import time; from bench.broker_app import record\n"
        f"t=time.perf_counter()\nfor i in range({count}): record.delay(i)\n"
        "print(time.perf_counter()-t)"
    )
    elapsed = float(
        subprocess.run([sys.executable, "-c", publish], env=env, capture_output=True, text=True, check=True)
        .stdout.strip()
        .splitlines()[-1]
    )
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            worker_command(f"w{n}", concurrency=1, app="bench.broker_app", loglevel="WARNING"),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n in range(workers)
    ]
    seen: list[str] = []
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        seen = [line for f in out.glob("*.log") for line in f.read_text().split()]
        if len(set(seen)) >= count:
            break
        time.sleep(0.1)
    drain = time.perf_counter() - started
    time.sleep(1.0)  # let any late duplicate land
    seen = [line for f in out.glob("*.log") for line in f.read_text().split()]
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(30)
    return {
        "publish_per_s": count / elapsed,
        "drain_s": drain,
        "drain_per_s": count / drain,
        "delivered": len(seen),
        "unique": len(set(seen)),
        "lost": count - len(set(seen)),
    }


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    deep = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    plan = [(count, 1), (count, 2)] + ([(deep, 2)] if deep else [])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("sqla+sqlite", "filesystem"):
            for size, workers in plan:
                base = Path(tmp) / f"{name}-{size}-{workers}"
                base.mkdir()
                result = run(name, transports(base)[name], size, workers, base)
                rows.append((name, size, workers, result))
                print(name, size, workers, {k: round(v, 1) for k, v in result.items()}, flush=True)
    lines = [
        "## Embedded broker: SQLAlchemy/SQLite vs filesystem transport",
        "",
        f"`bench/embedded_broker.py {count} {deep}`: one process publishes the tasks, then 1 or 2 "
        "worker processes (prefork, concurrency 1, acks_late, prefetch 1) drain them; every "
        "delivery is logged to count duplicates and losses.",
        "",
        "| transport | tasks | workers | publish /s | drain s | drained /s | deliveries | duplicates | lost |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, size, workers, r in rows:
        lines.append(
            f"| {name} | {size} | {workers} | {r['publish_per_s']:.0f} | {r['drain_s']:.1f} | "
            f"{r['drain_per_s']:.0f} | {r['delivered']} | {r['delivered'] - r['unique']} | {r['lost']} |"
        )
    record("embedded-broker", "\n".join(lines))


if __name__ == "__main__":
    main()
