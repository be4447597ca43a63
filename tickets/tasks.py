"""Celery entry points. Thin: they take ids and call the modules below.

The top of tickets/: nothing in tickets/ imports this module; work is published by task name
(tickets/dispatch.py)."""

import logging
import sqlite3

from celery import shared_task
from django.conf import settings

from tickets import batch, pull, replies, retention, sync
from tickets.bulk import (
    republish_stale_jobs,
    run_bulk_job,  # noqa: F401 - registers the bulk-job task with the worker
)

log = logging.getLogger(__name__)


@shared_task(name="tickets.tasks.push_account")
def push_account(account_id: int) -> dict:
    """An account nudge: its due tickets, then its due replies, in batches (tickets/batch.py)."""
    return {
        "tickets": batch.push_account(sync.TICKETS, account_id),
        "replies": batch.push_account(replies.REPLIES, account_id),
    }


@shared_task(name="tickets.tasks.push_ticket")
def push_ticket(ticket_id: int) -> dict:
    """A message naming one ticket, queued before pushes became account nudges."""
    account_id = batch.account_of_row(sync.TICKETS, ticket_id)
    return push_account(account_id) if account_id is not None else {}


@shared_task(name="tickets.tasks.push_reply")
def push_reply(reply_id: int) -> dict:
    """A message naming one reply, queued before pushes became account nudges."""
    account_id = batch.account_of_row(replies.REPLIES, reply_id)
    return push_account(account_id) if account_id is not None else {}


@shared_task(name="tickets.tasks.pull_remote_state")
def pull_remote_state() -> int:
    """Beat: one pull_account message per account whose provider can be read."""
    return pull.publish_pulls()


@shared_task(name="tickets.tasks.pull_account")
def pull_account(account_id: int) -> dict:
    return pull.pull_account_by_id(account_id)


@shared_task(name="tickets.tasks.sweep_sync_queue")
def sweep_sync_queue() -> dict:
    """Beat: the outbound pipeline's sweep, for tickets and then for replies."""
    tickets, replies_swept = sync.sweep(), replies.sweep()
    return {
        **tickets,
        "replies_published": replies_swept["published"],
        "replies_recovered": replies_swept["recovered"],
    }


@shared_task(name="tickets.tasks.republish_stale_bulk_jobs")
def republish_stale_bulk_jobs() -> int:
    return republish_stale_jobs()


@shared_task(name="tickets.tasks.purge_old_records")
def purge_old_records() -> dict:
    """Beat, daily: sync attempts, inbound events and finished bulk jobs past their retention."""
    return retention.purge_old_records()


@shared_task(name="tickets.tasks.purge_embedded_broker")
def purge_embedded_broker() -> int:
    """kombu's SQLAlchemy transport keeps delivered messages (visible=0) forever; drop them."""
    url = settings.CELERY_BROKER_URL
    if not url.startswith("sqla+sqlite:///"):
        return 0
    with sqlite3.connect(url.removeprefix("sqla+sqlite:///"), timeout=30) as connection:
        try:
            return connection.execute("DELETE FROM kombu_message WHERE visible = 0").rowcount
        except sqlite3.OperationalError:  # table not created yet
            return 0
