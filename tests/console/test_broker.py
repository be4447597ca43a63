"""The embedded broker (console/broker.py): kombu's SQLAlchemy transport on a SQLite file, with
a poll that looks before it locks. Real kombu connections on a throwaway broker file."""

from __future__ import annotations

import queue
import sqlite3

import pytest
from kombu import Connection

from console import broker


@pytest.fixture
def broker_url(tmp_path):
    broker.register()  # what console/celery.py does for every process
    return f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}"


def connect(url: str) -> Connection:
    # A short busy timeout: a poll that waited for a lock would fail here instead of waiting.
    return Connection(url, transport_options={"connect_args": {"timeout": 1}})


def test_each_message_is_delivered_once_to_workers_polling_the_same_queue(broker_url):
    with connect(broker_url) as publisher, connect(broker_url) as first, connect(broker_url) as second:
        outbox = publisher.SimpleQueue("console")
        for number in range(6):
            outbox.put({"n": number})
        received = []
        inboxes = [first.SimpleQueue("console"), second.SimpleQueue("console")]
        for turn in range(8):  # the two take turns; the last turns find the queue empty
            try:
                message = inboxes[turn % 2].get(block=False)
            except queue.Empty:
                continue
            received.append(message.payload["n"])
            message.ack()
        assert sorted(received) == list(range(6))
        with pytest.raises(queue.Empty):
            inboxes[0].get(block=False)


def test_a_poll_of_an_empty_queue_does_not_wait_for_a_writers_lock(broker_url, tmp_path):
    """An idle worker polls every 20 ms. kombu's own poll took the broker file's write lock each
    time, so it waited for (and held up) whoever was publishing; this one only reads."""
    with connect(broker_url) as publisher, connect(broker_url) as worker:
        publisher.SimpleQueue("console").put({"n": 1})
        inbox = worker.SimpleQueue("console")
        inbox.get(block=False).ack()  # the queue exists and is empty now

        writer = sqlite3.connect(tmp_path / "broker.sqlite3", isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")  # a publisher in the middle of its write
        try:
            with pytest.raises(queue.Empty):
                inbox.get(block=False)  # kombu's poll raised "database is locked" after the timeout
        finally:
            writer.execute("ROLLBACK")
            writer.close()

        publisher.SimpleQueue("console").put({"n": 2})
        message = inbox.get(block=False)
        assert message.payload == {"n": 2}
        message.ack()
