"""The command line of a Celery worker process that the tests and the benchmarks start: one
way to write it. (The run command's worker differs on purpose: it runs beat and logs less.)"""

from __future__ import annotations

import sys


def worker_command(name: str, *, concurrency: int, app: str = "console", loglevel: str = "INFO") -> list[str]:
    """No gossip, mingle or heartbeat: nothing these workers do uses them, and each costs
    startup time and broker traffic. `name` is the node name; "@<host>" is added."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        app,
        "worker",
        "--loglevel",
        loglevel,
        "--concurrency",
        str(concurrency),
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-n",
        f"{name}@%h",
    ]
