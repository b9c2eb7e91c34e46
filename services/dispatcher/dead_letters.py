"""Setting a received message aside: dead-lettered with its reason, or deferred.

A message that cannot be handled is published, as received and with its reason in
``x-tenzo-error``, to ``tenzo.dead-letter``; the caller then acknowledges the original
(SPEC 6), so it works the same on RabbitMQ and on the embedded transport. A message of
a slow organization is deferred the same way, to ``tenzo.deferred``, which gives it
back after a TTL. Publishes go through a connection of their own, opened on first use,
and are confirmed by RabbitMQ before the original is acked: a dead letter at once (the
caller acks), deferred messages together (``ack_deferred``, once per consumer round:
RabbitMQ took 16–25 ms to confirm each persistent copy, and a consumer that waited for
every one of them stopped reading for seconds while many endpoints hung).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from kombu import Connection, Producer

from contracts.broker import DEAD_LETTER_QUEUE, DEFERRED_HEADER, DEFERRED_QUEUE, ERROR_HEADER
from services.dispatcher import metrics
from services.infrastructure.broker import BatchConfirms, broker_connection
from services.infrastructure.topology import is_rabbitmq

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
        self._confirms: BatchConfirms | None = None
        self._deferred: list[Any] = []  # originals whose copies wait to be confirmed

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
        self._wait_for_confirms()
        metrics.DEAD_LETTERED.labels(source).inc()
        log.warning("dead-lettered a message from %s: %s", source, reason)

    def defer(self, message: Any, raw: bytes, seconds: float) -> None:
        """Publish the message to tenzo.deferred, which gives it back after ``seconds``;
        ``ack_deferred`` acks the original once the broker has confirmed the copy."""
        self._publish_aside(
            message, raw, DEFERRED_QUEUE, {DEFERRED_HEADER: "slow endpoint"}, expiration=seconds
        )
        self._deferred.append(message)
        metrics.DEFERRED.inc()

    def ack_deferred(self) -> None:
        """Wait once for the confirmation of every copy deferred since the last call,
        then ack their originals (consumer thread)."""
        if not self._deferred:
            return
        self._wait_for_confirms()
        deferred, self._deferred = self._deferred, []
        for message in deferred:
            message.ack()

    def forget_deferred(self) -> None:
        """The consumer connected again: the broker gives the originals back."""
        self._deferred.clear()

    def close(self) -> None:
        if self._aside is not None:
            self._aside.release()
        self._aside = self._confirms = None

    def _publish_aside(
        self,
        message: Any,
        raw: bytes,
        queue: str,
        headers: dict[str, Any],
        expiration: float | None = None,
    ) -> None:
        """Publish a received message, unchanged but for added headers, to ``queue``."""
        try:
            if self._aside is None:
                self._aside = broker_connection(self.broker_url)
                self._confirms = BatchConfirms(self._aside) if is_rabbitmq(self._aside) else None
            if self._confirms is not None:
                self._confirms.expect_one()
            Producer(self._aside.default_channel).publish(
                raw,
                exchange="",
                routing_key=queue,
                headers=dict(message.headers or {}) | headers,
                content_type=message.content_type or "application/octet-stream",
                content_encoding=message.content_encoding or "binary",
                delivery_mode=2,
                expiration=expiration,
            )
        except Exception:
            self._aside_failed()
            raise

    def _wait_for_confirms(self) -> None:
        if self._confirms is None:
            return
        try:
            self._confirms.wait()
        except Exception:
            self._aside_failed()
            raise

    def _aside_failed(self) -> None:
        """Copies not confirmed yet may be lost with the connection: their originals go
        back to their queue (or come back anyway if the consumer's connection failed
        too). The connection is opened again for the next message."""
        deferred, self._deferred = self._deferred, []
        for message in deferred:
            with contextlib.suppress(Exception):
                message.requeue()
        self.close()
