"""dispatch.py publishes by name: every name it uses must be a task the worker registers."""

import importlib

from console.celery import app
from tickets import dispatch


def test_every_task_name_dispatch_publishes_is_registered_with_the_worker():
    names = {
        dispatch.PUSH_ACCOUNT,
        dispatch.PUSH_TICKET,
        dispatch.PUSH_REPLY,
        dispatch.PULL_ACCOUNT,
        dispatch.RUN_BULK_JOB,
    }
    importlib.import_module("tickets.tasks")  # what the worker's autodiscovery imports
    assert names <= set(app.tasks)
