"""dispatch.py publishes by name (every name it uses must be a task the worker registers), and
one account nudge for what one nudge still to run would send anyway."""

import importlib

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from console.celery import app
from tickets import batch, dispatch, replies, services, sync, tasks
from tickets.models import SyncState, Ticket


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


def kapture_comments(sandbox) -> list[str]:
    [remote] = sandbox.state("kapture")["tickets"]
    return sorted(comment["comment"] for comment in remote["comments"])


# These tests run the nudge's task in-process (the `nudges` fixture keeps what is published)
# and commit their data: the batch's threads read on connections of their own.
@pytest.mark.django_db(transaction=True)
def test_replies_queued_together_are_one_nudge_and_a_lost_one_is_swept(
    account_factory, sandbox, nudges, settings
):
    account = account_factory("kapture")
    ticket = services.create_ticket(account=account, title="Printer on fire")
    assert batch.push_account(sync.TICKETS, account.pk) == {SyncState.SYNCED: 1}
    nudges.clear()

    bodies = ["one", "two", "three"]
    for body in bodies:
        services.add_reply(ticket=ticket, body=body)
    assert nudges == [account.pk]

    # That nudge is lost: the sweeper publishes the replies again, once they were announced
    # SYNC_REQUEUE_AFTER ago (now, here), those left to the lost nudge too.
    settings.SYNC_REQUEUE_AFTER = 0
    assert replies.sweep()["published"] == 3
    assert nudges == [account.pk, account.pk]
    assert tasks.push_account(account.pk)["replies"] == {SyncState.SYNCED: 3}
    assert kapture_comments(sandbox) == sorted(bodies)


@pytest.mark.django_db(transaction=True)
def test_a_reply_written_right_after_its_ticket_rides_the_tickets_nudge(account_factory, sandbox, nudges):
    account = account_factory("kapture")
    ticket = services.create_ticket(account=account, title="Printer on fire")
    services.add_reply(ticket=ticket, body="Third floor, by the window.")
    assert nudges == [account.pk]  # the ticket's

    # What that nudge runs: the account's tickets, then its replies, the waiting one included.
    assert tasks.push_account(account.pk) == {
        "tickets": {SyncState.SYNCED: 1},
        "replies": {SyncState.SYNCED: 1},
    }
    assert kapture_comments(sandbox) == ["Third floor, by the window."]

    # That nudge has run: the next reply is a nudge of its own.
    services.add_reply(ticket=ticket, body="Fixed.")
    assert nudges == [account.pk, account.pk]
    assert tasks.push_account(account.pk)["replies"] == {SyncState.SYNCED: 1}


@pytest.mark.django_db(transaction=True)
def test_a_ticket_saved_while_its_accounts_run_sends_is_left_to_that_run_and_swept_if_not(
    account_factory, sandbox, nudges
):
    account = account_factory("kapture")
    first = services.create_ticket(account=account, title="Printer on fire")
    assert nudges == [account.pk]
    [claimed] = batch.claim_batch(sync.TICKETS, account.pk, limit=1)  # a run is sending it now
    assert claimed.pk == first.pk
    nudges.clear()

    second = services.create_ticket(account=account, title="Toner low")
    Ticket.objects.filter(pk=second.pk).update(enqueued_at=timezone.now())  # as if announced once
    dispatch.push_tickets([second.pk])
    # No nudge: it would find that run and return at once; the run claims it before it ends.
    assert nudges == []
    assert Ticket.objects.get(pk=second.pk).enqueued_at is None  # unannounced, for the sweeper

    # While that run sends, the sweeper leaves it to the run too. Should the run end without
    # claiming it (a breaker stopped it), the sweeper's next round publishes it.
    assert sync.sweep()["published"] == 1
    assert nudges == []
    Ticket.objects.filter(pk=first.pk).update(sync_state=SyncState.SYNCED, lease_renewed_at=None)
    assert sync.sweep()["published"] == 1
    assert nudges == [account.pk]


@pytest.mark.django_db(transaction=True)
def test_a_creates_dispatch_is_one_look_and_one_announcement(account_factory, nudges):
    account = account_factory("kapture")
    first = services.create_ticket(account=account, title="Printer on fire")
    assert nudges == [account.pk]
    nudges.clear()
    Ticket.objects.filter(pk=first.pk).update(enqueued_at=None)  # as if that nudge had run

    second = services.create_ticket(account=account, title="Toner low")
    # The ticket is saved; what its commit runs: one look (a run sending, a nudge still to
    # run?), then, none covering the account, one UPDATE announcing it and the publish.
    assert nudges == [account.pk]
    Ticket.objects.filter(pk=second.pk).update(enqueued_at=None)  # measured again, by itself
    nudges.clear()
    with CaptureQueriesContext(connection) as statements:
        dispatch.push_new_ticket(second.pk, account.pk)
    assert len(statements) == 2
    assert nudges == [account.pk]
    assert Ticket.objects.get(pk=second.pk).enqueued_at is not None

    # A third, while that nudge is still to run: the look alone, no publish; it rides the nudge.
    nudges.clear()
    third = Ticket.objects.create(
        account=account, title="Paper jam", revision=1, sync_state=SyncState.PENDING
    )
    with CaptureQueriesContext(connection) as statements:
        dispatch.push_new_ticket(third.pk, account.pk)
    assert len(statements) == 1
    assert nudges == []
    assert Ticket.objects.get(pk=third.pk).enqueued_at is None
