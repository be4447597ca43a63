"""A bare Celery app for the embedded-broker benchmark (same delivery settings as the console)."""

import os

from celery import Celery

from console import broker

broker.register()

app = Celery("broker_bench", broker=os.environ["BENCH_BROKER_URL"])
SQLITE_OPTIONS = {"connect_args": {"timeout": 30}}  # as console/settings.py sets it
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    broker_transport_options=(SQLITE_OPTIONS if os.environ["BENCH_BROKER_URL"].startswith("sqla") else {})
    | {
        key: float(value) if key == "polling_interval" else value
        for key, value in (
            item.split("=", 1) for item in os.environ.get("BENCH_TRANSPORT_OPTIONS", "").split(";") if item
        )
    },
)
OUT = os.environ.get("BENCH_OUT", "/tmp/broker-bench")


@app.task(name="bench.record")
def record(index: int) -> None:
    with open(f"{OUT}/{os.getpid()}.log", "a") as handle:
        handle.write(f"{index}\n")
