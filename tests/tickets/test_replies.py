"""Replies: queued by a service, pushed by the worker once the ticket exists remotely."""

import pytest

from tests.faults_harness import WorkerFleet, publishing_to
from tests.helpers import refreshed, wait_for
from tickets import dispatch, services
from tickets.models import Reply, SyncAttempt, SyncState, Ticket

pytestmark = pytest.mark.worker


def synced_ticket(account) -> Ticket:
    ticket = services.create_ticket(
        account=account,
        title="Printer on fire",
        description="Third floor",
        requester_email="tim@acme.com",
        requester_name="Tim",
    )
    wait_for(lambda: refreshed(ticket).sync_state == SyncState.SYNCED, message="the ticket was not created")
    return ticket


def settled(reply: Reply, state: str) -> Reply:
    wait_for(lambda: refreshed(reply).sync_state == state, message=f"the reply stayed {reply.sync_state}")
    return reply


def keliweb_messages(sandbox) -> list[str]:
    [remote] = sandbox.state("keliweb")["tickets"]
    return [r["message"] for r in remote["replies"]]


def test_a_reply_reaches_keliweb_and_is_recorded(worker, sandbox, account_factory):
    ticket = synced_ticket(account_factory("keliweb"))
    reply = settled(
        services.add_reply(ticket=ticket, body="Have you tried turning it off?", author=None),
        SyncState.SYNCED,
    )
    assert reply.sent_at is not None and reply.attempts == 1
    assert keliweb_messages(sandbox)[-1] == "Have you tried turning it off?"
    [attempt] = SyncAttempt.objects.filter(ticket=ticket, operation="reply")
    assert attempt.outcome == "success" and "turning it off" in attempt.request_body


def test_a_kapture_reply_is_a_comment_on_the_ticket(worker, sandbox, account_factory):
    ticket = synced_ticket(account_factory("kapture"))
    settled(services.add_reply(ticket=ticket, body="Replaced the toner."), SyncState.SYNCED)
    [remote] = sandbox.state("kapture")["tickets"]
    assert [c["comment"] for c in remote["comments"]] == ["Replaced the toner."]


def test_a_provider_without_replies_refuses_with_its_reason(worker, sandbox, account_factory):
    ticket = synced_ticket(account_factory("motadata"))
    with pytest.raises(services.TicketActionError, match="no comment or reply endpoint"):
        services.add_reply(ticket=ticket, body="Hello")
    assert not Reply.objects.exists()


def test_a_reply_waits_for_its_ticket_to_be_created(worker, sandbox, account_factory):
    account = account_factory("kapture")
    services.pause_account(account=account)
    ticket = services.create_ticket(account=account, title="Not created yet")
    reply = services.add_reply(ticket=ticket, body="First comment")
    wait_for(lambda: refreshed(ticket).next_attempt_at, message="the ticket was not held by the pause")
    assert refreshed(reply).sync_state == SyncState.PENDING and reply.attempts == 0

    services.resume_account(account=account)
    settled(reply, SyncState.SYNCED)
    create = SyncAttempt.objects.get(ticket=ticket, operation="create")
    sent = SyncAttempt.objects.get(ticket=ticket, operation="reply")
    assert sent.started_at > create.started_at
    [remote] = sandbox.state("kapture")["tickets"]
    assert [c["comment"] for c in remote["comments"]] == ["First comment"]


def test_a_reply_held_by_a_pause_is_sent_on_resume(worker, sandbox, account_factory):
    account = account_factory("kapture")
    ticket = synced_ticket(account)
    services.pause_account(account=account)
    reply = services.add_reply(ticket=ticket, body="Sent after the pause")
    wait_for(lambda: refreshed(reply).next_attempt_at, message="the reply was not held by the pause")
    assert reply.sync_state == SyncState.PENDING and reply.attempts == 0
    assert not SyncAttempt.objects.filter(operation="reply").exists()
    services.resume_account(account=account)
    settled(reply, SyncState.SYNCED)


def test_a_transient_failure_is_retried_and_a_lost_answer_is_held_not_reposted(
    worker, sandbox, account_factory
):
    ticket = synced_ticket(account_factory("keliweb"))
    sandbox.faults(script=["503"])
    retried = settled(services.add_reply(ticket=ticket, body="one"), SyncState.SYNCED)
    assert retried.attempts == 2

    sandbox.faults(script=["lost"])
    held = settled(services.add_reply(ticket=ticket, body="two"), SyncState.NEEDS_ATTENTION)
    assert "may have been posted" in held.last_error
    assert keliweb_messages(sandbox).count("two") == 1  # applied once, and not posted again
    outcomes = list(
        SyncAttempt.objects.filter(ticket=ticket, operation="reply")
        .order_by("started_at")
        .values_list("outcome", flat=True)
    )
    assert outcomes == ["retry", "success", "unknown"]


def test_a_held_reply_can_be_cancelled_or_sent_again(worker, sandbox, account_factory):
    ticket = synced_ticket(account_factory("keliweb"))
    sandbox.faults(script=["lost", "lost"])
    cancelled = settled(services.add_reply(ticket=ticket, body="one"), SyncState.NEEDS_ATTENTION)
    retried = settled(services.add_reply(ticket=ticket, body="two"), SyncState.NEEDS_ATTENTION)
    assert services.cancel_reply(reply=cancelled).sync_state == SyncState.CANCELLED
    services.retry_reply(reply=retried)  # a person checked: "two" never arrived, say
    settled(retried, SyncState.SYNCED)
    assert keliweb_messages(sandbox).count("one") == 1 and keliweb_messages(sandbox).count("two") == 2
    with pytest.raises(services.TicketActionError, match="nothing to retry"):
        services.retry_reply(reply=retried)


def test_a_burst_of_replies_publishes_one_nudge_and_the_worker_sends_them_all(
    worker, sandbox, account_factory, monkeypatch, tmp_path
):
    ticket = synced_ticket(account_factory("kapture"))
    nudged: list[int] = []
    publish_for_real = dispatch.nudge_accounts

    def counted(account_ids, **kwargs):
        nudged.extend(account_ids)
        return publish_for_real(account_ids, **kwargs)

    monkeypatch.setattr(dispatch, "nudge_accounts", counted)
    # Queued onto a broker of the test's own that no worker drains yet, so no reply is claimed
    # between two of them (the first nudge would then be over, and rightly not count for the
    # next): the nudges counted are the publisher's alone.
    broker = f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}"
    fleet = WorkerFleet(broker, tmp_path)
    bodies = [f"Update {n}: the toner is on its way." for n in range(5)]
    try:
        with publishing_to(broker):
            burst = [services.add_reply(ticket=ticket, body=body) for body in bodies]
            assert nudged == [ticket.account_id]  # five replies, one account nudge
            fleet.start(1)
            for reply in burst:
                assert settled(reply, SyncState.SYNCED).attempts == 1
        fleet.assert_alive()
    finally:
        fleet.stop_all()
    assert nudged == [ticket.account_id]  # the run sent them all: nothing was published again
    [remote] = sandbox.state("kapture")["tickets"]
    assert sorted(c["comment"] for c in remote["comments"]) == sorted(bodies)  # each once
