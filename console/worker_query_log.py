"""No SQL query log in worker processes, unless CONSOLE_WORKER_QUERY_LOG asks for one.

With DEBUG on (the default outside production, so under `manage.py runconsole` too) Django
wraps every cursor in its debug wrapper: each statement's SQL is rebuilt with its parameters,
timed and kept in `connection.queries`. Only the debug page and a developer's shell read that
log; a worker shows no page, and there it cost about 2 % of the worker's CPU in the bulk bench.
DEBUG itself stays as it is (the web process, started separately, keeps its debug page and its
log), and a test's `CaptureQueriesContext` (force_debug_cursor) still logs.
"""

from __future__ import annotations

from celery import signals
from django.conf import settings
from django.db.backends.base.base import BaseDatabaseWrapper


def log_forced_queries_only(wrapper: BaseDatabaseWrapper) -> bool:
    return wrapper.force_debug_cursor


@signals.worker_init.connect
@signals.worker_process_init.connect
def stop_query_log(**kwargs) -> None:
    """In the worker's main process (its pool children and beat inherit it) and, should the
    pool not fork, in each child."""
    if not settings.WORKER_QUERY_LOG:
        BaseDatabaseWrapper.queries_logged = property(log_forced_queries_only)
