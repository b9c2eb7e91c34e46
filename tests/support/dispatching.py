"""Fixtures and helpers for relay and dispatcher tests on both brokers.

Import the fixtures into a test module (``from tests.support.dispatching import *``).
Every test gets a clean topology: on RabbitMQ (a virtual host of the test run) the
queues and the exchange are deleted after each test; the embedded broker lives in the
test's own folder.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pika
import pytest
from kombu import Queue

from contracts.broker import DEAD_LETTER_QUEUE, DEFERRED_QUEUE, INTERVIEWS_QUEUE, PROJECTION_QUEUE
from domain.actors import DISPATCHER, OPERATOR
from domain.application import DeveloperTools
from services.bootstrap import build_application, build_dispatcher, build_relay
from services.infrastructure.broker import broker_connection
from services.settings import Settings
from tests.support.https_receiver import HttpsReceiver

__all__ = [
    "broker_url",
    "make_settings",
    "receiver",
    "Stack",
    "interview_message",
    "publish",
    "dead_letters",
    "queue_depth",
    "wait_for",
]


@pytest.fixture(params=["filesystem", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def broker_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """Each test using this runs on the embedded broker and on RabbitMQ."""
    if request.param == "filesystem":
        yield f"filesystem://{tmp_path}/broker"
        return
    url: str = request.getfixturevalue("amqp_url")
    delete_topology(url)
    try:
        yield url
    finally:
        delete_topology(url)


def delete_topology(url: str) -> None:
    parameters = pika.URLParameters(url)
    with _pika(parameters) as channel:
        for name in (INTERVIEWS_QUEUE, PROJECTION_QUEUE, DEAD_LETTER_QUEUE, DEFERRED_QUEUE):
            channel.queue_delete(name)
        channel.exchange_delete("tenzo.events")


@contextmanager
def _pika(parameters: pika.URLParameters) -> Iterator[Any]:
    connection = pika.BlockingConnection(parameters)
    try:
        yield connection.channel()
    finally:
        with suppress(Exception):
            connection.close()


@pytest.fixture
def receiver(tmp_path: Any) -> Iterator[HttpsReceiver]:
    with HttpsReceiver(directory=tmp_path) as running:
        yield running


ENCRYPTION_KEY = base64.b64encode(os.urandom(32)).decode()


def make_settings(
    tmp_path: Any,
    broker_url: str,
    ca_bundle: str | None,
    database_url: str | None = None,
    **env: str,
) -> Settings:
    values = {
        "TENZO_DATABASE_URL": database_url or f"sqlite:///{tmp_path}/events.sqlite3",
        "TENZO_BROKER_URL": broker_url,
        "TENZO_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "TENZO_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
        "TENZO_WEBHOOK_RETRY_DELAYS": "0,0.2,0.4",
        "TENZO_WEBHOOK_TIMEOUT": "5",
    }
    if ca_bundle:
        values["TENZO_WEBHOOK_CA_BUNDLE"] = ca_bundle
    values.update(env)
    return Settings.from_env(values)


class Stack:
    """The event store, and the relay and the dispatcher running in threads."""

    def __init__(self, settings: Settings, relay: bool = True):
        self.settings = settings
        self.application: DeveloperTools = build_application(settings)
        self.stop = threading.Event()
        self.dispatcher = build_dispatcher(
            settings, self.application, drain_seconds=1.0, defer_seconds=0.5
        )
        self.relay = build_relay(settings, self.application, poll_interval=0.05)
        self.threads = [threading.Thread(target=self.dispatcher.run, args=(self.stop,))]
        if relay:  # without it, the projection hears of no change through the broker
            self.threads.append(threading.Thread(target=self.relay.run, args=(self.stop,)))

    def __enter__(self) -> Stack:
        for thread in self.threads:
            thread.daemon = True
            thread.start()
        assert self.dispatcher.ready.wait(15), "the dispatcher did not start consuming"
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.stop.is_set():
            return
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=15)
        self.application.close()

    def organization(
        self, url: str | None, secret: str | None = "whsec-test-secret", enabled: bool = True
    ) -> uuid.UUID:
        """A new organization, with a webhook when ``url`` is given, known to the projection."""
        organization, _ = self.application.create_organization(
            f"Org {uuid.uuid4().hex[:6]}", OPERATOR
        )
        if url is not None:
            self.application.configure_webhook(organization.id, url, secret, enabled, OPERATOR)
        self.wait_for_projection()
        return organization.id

    def wait_for_projection(self, timeout: float = 10) -> None:
        """Wait until the dispatcher's projection has seen every event recorded so far."""
        target = self.application.recorder.max_notification_id() or 0
        projection = self.dispatcher.projection

        def caught_up() -> bool:
            projection.flush_position()
            return projection.position() >= target

        wait_for(caught_up, timeout, "the projection to catch up")

    def delivery(self, org_id: uuid.UUID, event_id: str) -> Any:
        from domain.deliveries import delivery_id

        return self.application.get_delivery(org_id, delivery_id(org_id, event_id))

    def wait_for_outcome(self, org_id: uuid.UUID, event_id: str, timeout: float = 15) -> Any:
        from domain.errors import NotFound

        def ended() -> Any:
            try:
                delivery = self.delivery(org_id, event_id)
            except NotFound:
                return None
            return delivery if delivery.status != "pending" else None

        return wait_for(ended, timeout, f"delivery of {event_id} to end")


def interview_message(org: uuid.UUID, **changes: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "event_type": "interview.completed",
        "occurred_at": "2026-11-27T17:00:00Z",
        "org_id": str(org),
        "data": {
            "interview_id": "int_123",
            "candidate_id": str(uuid.uuid4()),
            "job_id": str(uuid.uuid4()),
            "completed_at": "2026-11-27T16:59:12Z",
            "duration_seconds": 1260,
            "score": 87.5,
            "recommendation": "strong_yes",
            "summary": "Clear communicator; strong systems design.",
            "transcript_url": "https://transcripts.example.com/int_123",
        },
    }
    message.update(changes)
    return message


def publish(broker_url: str, *messages: dict[str, Any] | bytes) -> None:
    """Publish like a producer would: with pika on RabbitMQ (plain JSON, nothing kombu-
    specific); on the embedded broker, as `tenzo publish-interview` does, unvalidated."""
    bodies = [m if isinstance(m, bytes) else json.dumps(m).encode() for m in messages]
    if broker_url.startswith("amqp"):
        properties = pika.BasicProperties(content_type="application/json", delivery_mode=2)
        with _pika(pika.URLParameters(broker_url)) as channel:
            channel.confirm_delivery()
            for body in bodies:
                channel.basic_publish(
                    exchange="tenzo.events",
                    routing_key="interview.completed",
                    body=body,
                    properties=properties,
                )
        return
    from services.cli.publish import publish_interview

    for body in bodies:
        publish_interview(broker_url, body, validate=False)


def dead_letters(broker_url: str, expected: int, timeout: float = 10) -> list[tuple[bytes, dict]]:
    """Take ``expected`` messages from tenzo.dead-letter: (raw body, headers)."""
    found: list[tuple[bytes, dict]] = []
    deadline = time.monotonic() + timeout
    with broker_connection(broker_url) as connection:
        queue = Queue(DEAD_LETTER_QUEUE, durable=True)(connection.default_channel)
        queue.declare()
        while len(found) < expected and time.monotonic() < deadline:
            message = queue.get(no_ack=True)
            if message is None:
                time.sleep(0.05)
                continue
            body = message.body if isinstance(message.body, bytes) else message.body.encode()
            found.append((body, dict(message.headers or {})))
    return found


def queue_depth(broker_url: str, name: str) -> int:
    """Messages waiting in a queue (ready, not held by a consumer)."""
    with broker_connection(broker_url) as connection:
        _, count, _ = connection.default_channel.queue_declare(name, passive=True)
    return int(count)


def wait_for(predicate: Callable[[], Any], timeout: float = 10, what: str = "it") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def record_outcome(
    application: DeveloperTools,
    org_id: uuid.UUID,
    delivery_id: uuid.UUID,
    status_code: int,
    response_excerpt: str = "",
) -> None:
    """Record one attempt answered with ``status_code`` and the delivery's outcome, as
    the dispatcher does (a success status ends it succeeded, any other failed)."""
    succeeded = status_code in (200, 201, 202, 204)
    delivery = application.get_delivery(org_id, delivery_id)
    delivery.record_attempt(
        started_at=application.clock(),
        status_code=status_code,
        duration_ms=12,
        error=None if succeeded else f"unexpected status {status_code}",
        response_excerpt=response_excerpt,
        actor=DISPATCHER,
    )
    if succeeded:
        delivery.succeed(actor=DISPATCHER)
    else:
        delivery.fail(reason="1 attempts failed", actor=DISPATCHER)
    application.save(delivery)
