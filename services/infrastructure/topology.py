"""The exchange, queues and bindings of SPEC 6, declared alike on RabbitMQ and the embedded broker.

Every party (relay, dispatcher, `tenzo publish-interview`) declares the whole topology
before it publishes or consumes, so no message is dropped as unroutable because its
consumer has not started yet. Declaring is idempotent.
"""

from __future__ import annotations

import fcntl
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kombu import Connection, Queue, binding

from contracts.broker import (
    DEAD_LETTER_QUEUE,
    DEFERRED_QUEUE,
    INTERVIEW_COMPLETED,
    INTERVIEWS_QUEUE,
    PROJECTION_QUEUE,
    RELAY_POSITION_KEY,
)
from services.infrastructure.broker import EVENTS_EXCHANGE, broker_connection

log = logging.getLogger("tenzo.broker")

# What the dispatcher's projection queue receives of the relayed events: the state it
# keeps, the deliveries it must start (test events, redeliveries), and the relay's
# position markers. Deliveries of interviews start from their broker message instead,
# so their own events (three per delivery) are not routed to it.
PROJECTION_KEYS = (
    "devtools.webhook.#",
    "devtools.job.#",
    "devtools.candidate.#",
    "devtools.delivery.scheduled.webhook_test",
    "devtools.delivery.redelivery_requested",
    RELAY_POSITION_KEY,
)


def is_rabbitmq(connection: Connection) -> bool:
    return bool(connection.transport.driver_type == "amqp")


def queues(rabbitmq: bool) -> dict[str, Queue]:
    """The dispatcher's queues: quorum queues on RabbitMQ (replicated, durable), plain
    durable queues on the embedded transport (which has no queue types)."""
    quorum = {"x-queue-type": "quorum"} if rabbitmq else {}
    return {
        INTERVIEWS_QUEUE: Queue(
            INTERVIEWS_QUEUE,
            EVENTS_EXCHANGE,
            routing_key=INTERVIEW_COMPLETED,
            durable=True,
            queue_arguments=quorum,
        ),
        PROJECTION_QUEUE: Queue(
            PROJECTION_QUEUE,
            bindings=[binding(EVENTS_EXCHANGE, routing_key=key) for key in PROJECTION_KEYS],
            durable=True,
            queue_arguments=quorum,
        ),
        DEAD_LETTER_QUEUE: Queue(DEAD_LETTER_QUEUE, durable=True),
    } | ({DEFERRED_QUEUE: deferred_queue()} if rabbitmq else {})


def deferred_queue() -> Queue:
    """Where a slow organization's surplus messages wait before they come back: each is
    published with an expiration, and RabbitMQ's dead-letter exchange then routes it to
    the interviews queue again."""
    return Queue(
        DEFERRED_QUEUE,
        durable=True,
        queue_arguments={
            "x-dead-letter-exchange": EVENTS_EXCHANGE.name,
            "x-dead-letter-routing-key": INTERVIEW_COMPLETED,
        },
    )


def declare_topology(connection: Connection) -> dict[str, Queue]:
    """Declare the exchange, the queues and their bindings; return the bound queues."""
    with _exclusively(connection):
        channel = connection.default_channel
        EVENTS_EXCHANGE(channel).declare()
        declared = {}
        for name, queue in queues(is_rabbitmq(connection)).items():
            bound = queue(channel)
            bound.declare()
            declared[name] = bound
    return declared


def prepare_broker(url: str, timeout: float = 2.0) -> bool:
    """Whether the broker answers; it is given the exchange and the queues on the way.

    The API and `tenzo serve` call this when they start, and ``/readyz`` until it has
    succeeded once in the process: once the service says it is ready, an interview
    published by any AMQP client is kept in ``tenzo.dispatcher.interviews`` even if no
    dispatcher has connected yet (a topic exchange drops what no queue is bound to).
    """
    try:
        with broker_connection(url) as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout)
            declare_topology(connection)
        return True
    except Exception as error:  # noqa: BLE001 - any failure means "not ready"
        # Unreachable, or reachable but refusing (a queue declared with other
        # arguments, a user without the configure permission): the log says which.
        log.warning("broker: cannot declare the exchange and queues: %s", error)
        return False


_IN_PROCESS = threading.Lock()


@contextmanager
def _exclusively(connection: Connection) -> Iterator[None]:
    """On the embedded broker, one declaration at a time, across threads and processes.

    kombu's filesystem transport writes a new exchange table without a lock held from
    the start, so two first declarations at once can leave a corrupt table behind.
    """
    folder = (connection.transport_options or {}).get("control_folder")
    if is_rabbitmq(connection) or not folder:
        yield
        return
    with _IN_PROCESS, open(Path(folder) / ".declare.lock", "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
