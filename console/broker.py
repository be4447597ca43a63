"""The embedded broker: kombu's SQLAlchemy transport on its own SQLite file, polling fast.

kombu's virtual transports sleep `polling_interval` (1 s by default) whenever a worker cannot
take another message, which with prefetch 1 and acks_late means after every task: about one
task per second per worker. The interval is normally a transport option, but the SQLAlchemy
transport hands every option to `create_engine()`, which rejects it (kombu 5.7). So the
interval is a class attribute of this subclass, registered under the `sqla` alias that
`sqla+sqlite://` URLs resolve to. Measured in docs/benchmarks.md ("Embedded broker"): 20 ms
gives 2.2x the throughput of 50 ms for 5 % of a core per idle worker instead of 3 %.
"""

import os
from queue import Empty

import environ
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport.sqlalchemy import Channel as SQLAlchemyChannel
from kombu.transport.sqlalchemy import Transport as SQLAlchemyTransport
from sqlalchemy import text


class EmbeddedSQLiteChannel(SQLAlchemyChannel):
    """kombu's channel, with a poll that first looks without a lock.

    kombu's own poll is a write transaction (BEGIN IMMEDIATE, two ORM queries, COMMIT) even when
    the queue is empty, as it is for most polls: an idle worker spent 15 % of a core on it, and
    every publish waited for its lock. Here a poll reads first and raises Empty when no message
    waits; only a poll that saw one takes kombu's locked path, which claims it (or finds that
    another worker did, and raises Empty too)."""

    def _get(self, queue):
        if not self._message_waiting(queue):
            raise Empty()
        return super()._get(queue)

    def _message_waiting(self, queue: str) -> bool:
        statement = text(
            f"SELECT 1 FROM {self.message_tablename} AS message "  # noqa: S608 - kombu's table names
            f"JOIN {self.queue_tablename} AS queue ON message.queue_id = queue.id "
            "WHERE queue.name = :name AND message.visible = 1 LIMIT 1"
        )
        try:
            return self.session.execute(statement, {"name": queue}).first() is not None
        finally:
            self.session.commit()  # ends the read, so the next poll sees what was published since


class EmbeddedSQLiteTransport(SQLAlchemyTransport):
    Channel = EmbeddedSQLiteChannel
    polling_interval = float(os.environ.get("CELERY_POLLING_INTERVAL", "0.02"))


def register() -> None:
    TRANSPORT_ALIASES["sqla"] = "console.broker:EmbeddedSQLiteTransport"


def transport_options(broker_url: str) -> dict:
    """The transport options a broker URL needs (read from the environment). One place, because
    a publisher switched to another broker must switch these too: the SQLAlchemy transport hands
    every option to create_engine(), which refuses Redis's visibility_timeout."""
    env = environ.Env()
    if broker_url.startswith(("redis://", "rediss://")):
        # Task time limits stay well below it, so a slow task is killed before Redis would hand
        # its message to a second worker (RabbitMQ's counterpart, consumer_timeout, is 30 min).
        return {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)}
    if broker_url.startswith(("amqp://", "amqps://", "pyamqp://")):
        # Publisher confirms: a publish returns once RabbitMQ has taken the message. Without
        # them, a message RabbitMQ did not take (a connection dropping mid-publish, a node
        # refusing it) is gone without an error, and only the sweeper's next round sends the work.
        return {"confirm_publish": True}
    if broker_url.startswith("sqla+sqlite"):
        # The broker's SQLite file gets the database's patient busy timeout, so web, worker and
        # beat wait for its lock instead of failing. (Polling speed: the class above.)
        return {"connect_args": {"timeout": env.int("SQLITE_BUSY_TIMEOUT", default=30)}}
    return {}
