"""The whole conversation: replies written on the provider's side are pulled back (Keliweb's
get-ticket carries them), stored once, never sent back, and shown on the ticket page."""

import pytest
from django.test import Client
from django.urls import reverse

from providers.base import RemoteReply
from tests.helpers import refreshed, wait_for
from tests.tickets.test_views import make_agent
from tickets import conversation, pull, services
from tickets.models import Reply, SyncAttempt, SyncState, Ticket
from tickets.tasks import sweep_sync_queue

pytestmark = pytest.mark.worker


def synced_keliweb_ticket(account) -> Ticket:
    ticket = services.create_ticket(
        account=account,
        title="Mail bounces",
        description="Since 9:00",
        requester_email="anna@acme.test",
        requester_name="Anna Verdi",
    )
    wait_for(lambda: refreshed(ticket).sync_state == SyncState.SYNCED, message="the ticket was not created")
    return ticket


def keliweb_messages(sandbox) -> list[str]:
    [remote] = sandbox.state("keliweb")["tickets"]
    return [reply["message"] for reply in remote["replies"]]


def test_a_reply_written_in_keliweb_is_pulled_once_shown_and_never_sent_back(
    worker, sandbox, account_factory
):
    account = account_factory("keliweb")
    ticket = synced_keliweb_ticket(account)
    sandbox.control(
        "keliweb/staff-reply",
        {
            "ticketid": ticket.remote_id,
            "admin": "Giulia Bianchi",
            "message": "We moved your mailbox.\r\nTry again now.",
        },
    )

    assert pull.pull_account(account=account).replies_received == 1
    assert pull.pull_account(account=account).replies_received == 0  # the second read adds nothing
    [received] = Reply.objects.filter(ticket=ticket)
    assert (received.direction, received.remote_author, received.remote_by_staff) == (
        "inbound",
        "Giulia Bianchi",
        True,
    )
    assert received.body == "We moved your mailbox.\r\nTry again now." and received.remote_date
    assert refreshed(ticket).status == "pending"  # Keliweb's "Answered", through the status map

    # Never sent back: the sweeper publishes nothing for it and the worker posts nothing.
    assert sweep_sync_queue()["replies_published"] == 0
    assert not SyncAttempt.objects.filter(operation="reply").exists()
    assert keliweb_messages(sandbox) == [
        f"Since 9:00\n\n[Ticket Console {ticket.reference}]",
        "We moved your mailbox.\r\nTry again now.",
    ]

    client = Client()
    client.force_login(make_agent())
    page = client.get(reverse("tickets:detail", args=[ticket.pk])).content.decode()
    assert 'aria-label="Reply from Keliweb"' in page and "Giulia Bianchi (support agent)" in page
    assert "We moved your mailbox.<br>Try again now." in page


def test_our_own_reply_coming_back_is_recognised_not_duplicated(worker, sandbox, account_factory):
    account = account_factory("keliweb")
    ticket = synced_keliweb_ticket(account)
    reply = services.add_reply(ticket=ticket, body="Could you send the bounce message?")
    wait_for(lambda: refreshed(reply).sync_state == SyncState.SYNCED, message="the reply was not sent")
    sandbox.control("keliweb/customer-reply", {"ticketid": ticket.remote_id, "message": "Attached it."})

    assert pull.pull_account(account=account).replies_received == 1  # the requester's, not ours
    pull.pull_account(account=account)
    replies = list(Reply.objects.filter(ticket=ticket).order_by("id"))
    assert [(r.direction, r.body) for r in replies] == [
        ("outbound", "Could you send the bounce message?"),
        ("inbound", "Attached it."),
    ]
    assert refreshed(reply).remote_id  # known by Keliweb's id from now on
    assert (replies[1].remote_author, replies[1].remote_by_staff) == ("Anna Verdi", False)
    assert keliweb_messages(sandbox)[1:] == ["Could you send the bounce message?", "Attached it."]
    assert SyncAttempt.objects.filter(operation="reply").count() == 1


def test_a_reply_held_after_a_lost_answer_counts_as_sent_once_it_is_read_back(
    worker, sandbox, account_factory
):
    account = account_factory("keliweb")
    ticket = synced_keliweb_ticket(account)
    sandbox.faults(script=["lost"])
    held = services.add_reply(ticket=ticket, body="Restarted the relay.")
    wait_for(
        lambda: refreshed(held).sync_state == SyncState.NEEDS_ATTENTION, message="the reply was not held"
    )

    assert pull.pull_account(account=account).replies_received == 0
    held = refreshed(held)
    assert (held.sync_state, held.last_error) == (SyncState.SYNCED, "")
    assert held.remote_id and held.sent_at
    assert Reply.objects.filter(ticket=ticket).count() == 1
    assert keliweb_messages(sandbox).count("Restarted the relay.") == 1


def test_a_reply_read_back_while_being_sent_then_held_counts_as_sent(db, account_factory):
    account = account_factory("keliweb")
    ticket = Ticket.objects.create(account=account, title="Mail", remote_id="7", revision=1)
    sending = Reply.objects.create(ticket=ticket, body="Restarted it.", sync_state=SyncState.SENDING)
    theirs = RemoteReply(remote_id="3", body="Restarted  it.\r\n", author="Anna Verdi")
    assert conversation.record_remote_replies(ticket_id=ticket.pk, remote_replies=[theirs]) == 0
    assert refreshed(sending).remote_id == "3"
    # The post's answer was lost after all: the worker holds the reply for a person...
    Reply.objects.filter(pk=sending.pk).update(sync_state=SyncState.NEEDS_ATTENTION, last_error="lost")
    # ...and the next read settles it, without storing it again.
    assert conversation.record_remote_replies(ticket_id=ticket.pk, remote_replies=[theirs]) == 0
    assert (refreshed(sending).sync_state, sending.last_error) == (SyncState.SYNCED, "")
    assert Reply.objects.filter(ticket=ticket).count() == 1
