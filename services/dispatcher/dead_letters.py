"""Setting a received message aside: dead-lettered with its reason, or deferred.

A message that cannot be handled is published, as received and with its reason in
``x-tenzo-error``, to ``tenzo.dead-letter``; the caller then acknowledges the original
(SPEC 6), so it works the same on RabbitMQ and on the embedded transport. A message of
a slow organization is deferred the same way, to ``tenzo.deferred``, which gives it
back after a TTL. Publishes go through a connection of their own (confirmed by
RabbitMQ before the caller acks the original), opened on first use.
"""

from __future__ import annotations

import logging
from typing import Any

from kombu import Connection, Producer

from contracts.broker import DEAD_LETTER_QUEUE, DEFERRED_HEADER, DEFERRED_QUEUE, ERROR_HEADER
from services.dispatcher import metrics
from services.infrastructure.broker import broker_connection

log = logging.getLogger("tenzo.dispatcher")


def raw_body(message: Any) -> bytes:
    """The body bytes as published (py-amqp decodes bodies that name an encoding)."""
    body = message.body
    if isinstance(body, str):
        return body.encode(message.content_encoding or "utf-8")
    return bytes(body)


class DeadLetters:
    """Publishes received messages aside (dead letters, deferred messages)."""

    def __init__(self, broker_url: str):
        self.broker_url = broker_url
        self._aside: Connection | None = None

    def dead_letter(self, message: Any, raw: bytes, reason: str, source: str) -> None:
        """Publish the message as received to tenzo.dead-letter with its reason; the
        caller then acks the original (SPEC 6). Confirmed on RabbitMQ."""
        self._publish_aside(
            message,
            raw,
            DEAD_LETTER_QUEUE,
            {
                ERROR_HEADER: reason[:1000],
                "x-tenzo-queue": source,
                "x-tenzo-routing-key": message.delivery_info.get("routing_key") or "",
            },
        )
        metrics.DEAD_LETTERED.labels(source).inc()
        log.warning("dead-lettered a message from %s: %s", source, reason)

    def defer(self, message: Any, raw: bytes, seconds: float) -> None:
        """Publish the message to tenzo.deferred, which gives it back after ``seconds``;
        the caller then acks the original."""
        self._publish_aside(
            message, raw, DEFERRED_QUEUE, {DEFERRED_HEADER: "slow endpoint"}, expiration=seconds
        )
        metrics.DEFERRED.inc()

    def close(self) -> None:
        if self._aside is not None:
            self._aside.release()

    def _publish_aside(
        self,
        message: Any,
        raw: bytes,
        queue: str,
        headers: dict[str, Any],
        expiration: float | None = None,
    ) -> None:
        """Publish a received message, unchanged but for added headers, to ``queue``
        (confirmed by RabbitMQ before the caller acks the original)."""
        if self._aside is None:
            self._aside = broker_connection(self.broker_url, confirm_publish=True)
        Producer(self._aside.default_channel).publish(
            raw,
            exchange="",
            routing_key=queue,
            headers=dict(message.headers or {}) | headers,
            content_type=message.content_type or "application/octet-stream",
            content_encoding=message.content_encoding or "binary",
            delivery_mode=2,
            expiration=expiration,
            retry=True,
            retry_policy={"max_retries": 3},
        )
