import pytest
from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test.utils import CaptureQueriesContext, override_settings

from console import worker_query_log


def keep_queries_logged(monkeypatch):
    """Put Django's own property back after the test (the worker signal replaces it)."""
    monkeypatch.setattr(BaseDatabaseWrapper, "queries_logged", BaseDatabaseWrapper.queries_logged)


@pytest.mark.django_db
@override_settings(DEBUG=True, WORKER_QUERY_LOG=False)
def test_a_worker_keeps_no_query_log_under_debug(monkeypatch):
    keep_queries_logged(monkeypatch)
    assert connection.queries_logged
    worker_query_log.stop_query_log()
    assert not connection.queries_logged
    with CaptureQueriesContext(connection) as captured:  # a test asking for the queries still gets them
        connection.cursor().execute("SELECT 1")
    assert len(captured) == 1


@override_settings(DEBUG=True, WORKER_QUERY_LOG=True)
def test_the_query_log_stays_when_asked_for(monkeypatch):
    keep_queries_logged(monkeypatch)
    worker_query_log.stop_query_log()
    assert connection.queries_logged
