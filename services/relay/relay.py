"""The relay (transactional outbox → broker): every domain event, in order, to tenzo.events.

It follows the event store's notification log from its saved position, publishes each
event's redacted audit record (contracts/audit.py: never a secret on the broker, and a
candidate's personal fields only as sealed tokens, personal_data.py) with
routing key ``devtools.<aggregate>.<event>`` (contracts/broker.py), persistent, and
saves its new position only once the broker has confirmed every message of the batch
(publisher confirms on RabbitMQ). A crash between publish and save publishes the batch
again: at-least-once, in notification order; consumers apply events idempotently.

Its position is a row of ``tenzo_relay_position`` (services/infrastructure/positions.py),
saved with compare-and-set: a second relay that moved it meanwhile makes this one
read it again. When the broker (or the database) is unreachable the relay reconnects
after ``ReconnectDelays`` (tenacity's exponential wait) and catches up when it
returns; the API never waits for it. ``tenzo_relay_lag_events`` says how far behind
it is. Built by ``build_relay`` (services/bootstrap.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from typing import Any

from kombu import Connection

from contracts.audit import audit_item
from contracts.broker import RELAY_POSITION_KEY, domain_event_routing_key
from domain.application import DeveloperTools
from services.infrastructure.broker import (
    EVENTS_EXCHANGE,
    BatchConfirms,
    broker_connection,
    broker_display,
    gathered,
)
from services.infrastructure.personal_data import sealed_decoder
from services.infrastructure.positions import Position, PositionMoved
from services.infrastructure.retrying import ReconnectDelays
from services.infrastructure.topology import declare_topology, is_rabbitmq
from services.relay import metrics

log = logging.getLogger("tenzo.relay")


class Relay:
    """Publishes the notification log to the broker. ``run(stop)`` until ``stop`` is set."""

    def __init__(
        self,
        application: DeveloperTools,
        broker_url: str,
        position: Position,
        *,
        batch_size: int = 500,
        poll_interval: float = 0.1,
    ):
        self.application = application
        self.broker_url = broker_url
        self.saved = position
        self.batch_size = batch_size
        self.poll_interval = poll_interval

    # -- position --------------------------------------------------------------------

    def position(self) -> int:
        return self.saved.read()

    def _save_position(self, old: int, new: int) -> None:
        """Raises PositionMoved when another relay saved a different position."""
        with self.saved.transaction() as cursor:
            self.saved.move(cursor, old, new)

    def lag(self, position: int | None = None) -> int:
        newest = self.application.recorder.max_notification_id() or 0
        behind = max(0, newest - (self.position() if position is None else position))
        metrics.RELAY_LAG.set(behind)
        return behind

    # -- publishing ------------------------------------------------------------------

    def publish_batch(self, connection: Connection, confirms: BatchConfirms | None = None) -> int:
        """Publish the next batch and save the position; return how many were published.

        With ``confirms`` (RabbitMQ), the position is saved only once the broker has
        confirmed every message of the batch.
        """
        start = self.position()
        notifications = self.application.recorder.select_notifications(
            start=start + 1, limit=self.batch_size
        )
        if not notifications:
            self.lag(start)
            return 0
        decode = sealed_decoder(self.application)  # personal fields stay sealed tokens
        channel = connection.default_channel
        with gathered(connection):
            for notification in notifications:
                item = audit_item(decode(notification), notification.id)
                routing_key = domain_event_routing_key(
                    item["aggregate_type"], item["type"], item["data"]
                )
                _publish(channel, confirms, routing_key, item, message_id=item["id"])
            # A position marker after the batch: consumers that get it have got every
            # earlier event routed to them (their lag is measured against it).
            _publish(channel, confirms, RELAY_POSITION_KEY, {"position": notifications[-1].id})
        if confirms is not None:
            confirms.wait()
        self._save_position(start, notifications[-1].id)
        metrics.RELAY_PUBLISHED.inc(len(notifications))
        self.lag(notifications[-1].id)
        return len(notifications)

    def run(self, stop: threading.Event) -> None:
        """Relay until ``stop`` is set; after any failure (broker or database down),
        reconnect with exponential backoff, starting again at the saved position."""
        backoff = ReconnectDelays()
        while not stop.is_set():
            try:
                self._run_connected(stop, backoff)
            except Exception as error:  # noqa: BLE001 - every failure is retried
                delay = backoff.next()
                log.warning("relay: %s: %s; retrying in %.1fs", type(error).__name__, error, delay)
                stop.wait(delay)

    def _run_connected(self, stop: threading.Event, backoff: ReconnectDelays) -> None:
        with broker_connection(self.broker_url) as connection:
            connection.ensure_connection(max_retries=1, timeout=5)
            declare_topology(connection)
            confirms = BatchConfirms(connection) if is_rabbitmq(connection) else None
            backoff.reset()
            log.info(
                "relay: publishing from position %d to %s",
                self.position(),
                broker_display(self.broker_url),
            )
            while not stop.is_set():
                try:
                    published = self.publish_batch(connection, confirms)
                except PositionMoved:
                    log.info("relay: another relay moved the position; reading it again")
                    continue
                if published < self.batch_size:
                    # Waiting on the connection, not a timer: the broker's heartbeats
                    # (and any late confirm) are read, so an idle relay stays connected.
                    with contextlib.suppress(TimeoutError):
                        connection.drain_events(timeout=self.poll_interval)
                    connection.heartbeat_check()


def _publish(
    channel: Any,
    confirms: BatchConfirms | None,
    routing_key: str,
    body: dict[str, Any],
    message_id: str | None = None,
) -> None:
    """One persistent JSON message to tenzo.events, on kombu's transport channel.

    Not through kombu's Producer, which adds nothing here (the exchange is declared,
    the body is JSON already) and took a fifth of the relay's time (docs/benchmarks.md).
    """
    if confirms is not None:
        confirms.expect_one()  # before publishing: its confirmation may come meanwhile
    properties: dict[str, Any] = {"delivery_mode": 2}
    if message_id is not None:
        properties["message_id"] = message_id
    message = channel.prepare_message(
        json.dumps(body, separators=(",", ":")).encode("utf-8"),
        content_type="application/json",
        content_encoding="utf-8",
        properties=properties,
    )
    channel.basic_publish(message, exchange=EVENTS_EXCHANGE.name, routing_key=routing_key)
