"""A request id on every log line: from the request, through the tasks it enqueues.

`RequestIdMiddleware` takes the caller's `X-Request-ID` (a proxy's or a load balancer's) when it
is a plain token, else makes one, and returns it in the response's `X-Request-ID`. While the
request runs, the id is in a context variable that `RequestIdFilter` copies onto every log
record. A task published during the request carries the id in a message header, and the worker
sets it for the task's duration, so the worker's lines for that push share the request's id.
With `LOG_FORMAT=json` every line is one JSON object (`JsonFormatter`).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime

from celery import signals
from django.http import HttpRequest, HttpResponse

HEADER = "X-Request-ID"
#: The Celery message header that carries the id from the web process to the worker.
TASK_HEADER = "request_id"
#: What an incoming id may look like: anything else (a log-injection attempt, a huge value)
#: is replaced by a fresh id.
ACCEPTED = re.compile(r"[A-Za-z0-9._:-]{1,128}")

current_request_id: ContextVar[str] = ContextVar("request_id", default="")


def new_request_id() -> str:
    return uuid.uuid4().hex


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.headers.get(HEADER, "")
        request_id = given if ACCEPTED.fullmatch(given) else new_request_id()
        token = current_request_id.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            current_request_id.reset(token)
        response[HEADER] = request_id
        return response


class RequestIdFilter(logging.Filter):
    """Puts the current request id (or "-") on every record, for any formatter to use."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, request_id (null
    outside a request or a request's task), and the traceback as `exception` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None) or current_request_id.get() or "-"
        line = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": None if request_id == "-" else request_id,
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


# --- carried into Celery tasks -------------------------------------------------------------
@signals.before_task_publish.connect
def add_request_id_header(headers: dict | None = None, **_) -> None:
    request_id = current_request_id.get()
    if request_id and headers is not None:
        headers.setdefault(TASK_HEADER, request_id)


@signals.task_prerun.connect
def set_request_id_for_task(task=None, **_) -> None:
    request_id = getattr(task.request, TASK_HEADER, None) if task is not None else None
    # Always set (to "" when the task came from beat or a shell): a pool process runs many
    # tasks, and one task's id must not stay on the next one's lines.
    current_request_id.set(request_id if isinstance(request_id, str) else "")


@signals.task_postrun.connect
def clear_request_id_after_task(**_) -> None:
    current_request_id.set("")
