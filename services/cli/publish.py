"""Publishing ``interview.completed`` as a producer would (`tenzo publish-interview`)."""

from __future__ import annotations

from typing import Any

from kombu import Producer

from contracts.broker import INTERVIEW_COMPLETED, parse_interview_completed
from services.infrastructure.broker import EVENTS_EXCHANGE, broker_connection
from services.infrastructure.topology import declare_topology


def publish_interview(broker_url: str, body: bytes, *, validate: bool = True) -> dict[str, Any]:
    """Validate ``body`` (raises contracts.broker.InvalidMessage) and publish it unchanged:
    exchange tenzo.events, routing key interview.completed, persistent, application/json,
    confirmed by RabbitMQ. Returns the loaded message."""
    loaded = parse_interview_completed(body) if validate else {}
    with broker_connection(broker_url, confirm_publish=True) as connection:
        connection.ensure_connection(max_retries=3, timeout=5)
        declare_topology(connection)
        Producer(connection.default_channel).publish(
            body,
            exchange=EVENTS_EXCHANGE,
            routing_key=INTERVIEW_COMPLETED,
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=2,
            retry=True,
            retry_policy={"max_retries": 3},
        )
    return loaded
