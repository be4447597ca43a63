"""Probes for a load balancer or an orchestrator: `/healthz` (the process answers) and
`/readyz` (the database and the broker answer, each within `READINESS_TIMEOUT` seconds).

Probes come from inside the platform: by IP address (not an allowed host name) and over plain
HTTP. `ProbeMiddleware`, first in the chain, answers the two paths before the host check and the
SSL redirect can turn them away. The answers name what failed and the error's class, never a URL
or an error message (either may carry a host, a user or a password).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from functools import partial

from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse

from console.celery import app as celery_app

logger = logging.getLogger(__name__)


def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness: the process serves requests. Touches nothing else, so a database outage
    never gets healthy web processes restarted."""
    return HttpResponse("ok", content_type="text/plain")


def check_database() -> None:
    connection = connections["default"]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        # This runs in a probe thread: its connection is its own and must not outlive it.
        connection.close()


def check_broker(*, timeout: float) -> None:
    # The app's own broker settings (URL, transport options), as its publishers use them.
    with celery_app.connection_for_write(connect_timeout=timeout) as connection:
        # One try, no retry sleeps: connecting creates a channel, which for Redis is a PING.
        connection.ensure_connection(max_retries=0, timeout=timeout)


def run_checks(*, timeout: float) -> dict[str, str]:
    """Every check at once, each in its own thread, all given `timeout` seconds together:
    "ok", or what went wrong in words that carry no secret."""
    checks = {"database": check_database, "broker": partial(check_broker, timeout=timeout)}
    executor = ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="readyz")
    futures = {name: executor.submit(check) for name, check in checks.items()}
    wait(futures.values(), timeout=timeout)
    # A check still hanging (a silent network) is left to finish on its own.
    executor.shutdown(wait=False, cancel_futures=True)
    results = {}
    for name, future in futures.items():
        if not future.done():
            results[name] = f"no answer within {timeout:g} s"
        elif future.exception() is not None:
            results[name] = f"unreachable ({type(future.exception()).__name__})"
        else:
            results[name] = "ok"
        if results[name] != "ok":
            logger.warning("readiness: %s %s", name, results[name])
    return results


def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when the database and the broker answer, else 503 naming which did not."""
    checks = run_checks(timeout=settings.READINESS_TIMEOUT)
    ready = all(result == "ok" for result in checks.values())
    response = JsonResponse({"ready": ready, "checks": checks}, status=200 if ready else 503)
    # A 503 here is an answer, not a server error: run_checks has logged what failed as a
    # warning, so Django's request logger (which marks every 5xx an ERROR) is told it is done.
    response._has_been_logged = True
    return response


PROBES = {"/healthz": healthz, "/readyz": readyz}


class ProbeMiddleware:
    """Answers the probe paths ahead of every other middleware (host check, SSL redirect,
    sessions): see the module's docstring."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path_info)
        if probe is not None and request.method in ("GET", "HEAD"):
            return probe(request)
        return self.get_response(request)
