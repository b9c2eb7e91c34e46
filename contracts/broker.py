"""Messages on the broker (SPEC 6): names, the interview.completed message, relayed events.

Producers may import this module alone (marshmallow and the standard library) to
validate what they publish. The message is plain JSON, so any AMQP client works.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from contracts.json_text import RefusedJSON, loads
from contracts.webhook_payload import RECOMMENDATIONS, UtcTimestamp

EVENTS_EXCHANGE = "tenzo.events"
INTERVIEW_COMPLETED = "interview.completed"
INTERVIEWS_QUEUE = "tenzo.dispatcher.interviews"
PROJECTION_QUEUE = "tenzo.dispatcher.projection"
DEAD_LETTER_QUEUE = "tenzo.dead-letter"
DEFERRED_QUEUE = "tenzo.dispatcher.deferred"
"""RabbitMQ only: messages of an organization whose endpoint is not answering wait here
(TTL), then return to tenzo.events as interview.completed (dead-letter exchange)."""
DEFERRED_HEADER = "x-tenzo-deferred"
ERROR_HEADER = "x-tenzo-error"
DOMAIN_EVENT_PREFIX = "devtools"
RELAY_POSITION_KEY = "devtools.relay.position"
"""Routing key of the relay's position marker, published after each batch: a consumer
that receives it has received every earlier event routed to its queue."""

# An event id becomes the X-Webhook-Id header and part of the delivery id: keep it to
# characters that are safe in a header and unambiguous (a UUID qualifies).
EVENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$"


class InterviewDataSchema(Schema):
    class Meta:
        unknown = RAISE

    interview_id = fields.String(required=True, validate=validate.Length(min=1, max=200))
    candidate_id = fields.String(required=True, validate=validate.Length(min=1, max=200))
    job_id = fields.String(required=True, validate=validate.Length(min=1, max=200))
    completed_at = UtcTimestamp(required=True)
    duration_seconds = fields.Integer(
        strict=True, allow_none=True, load_default=None, validate=validate.Range(min=0)
    )
    score = fields.Float(allow_none=True, load_default=None, allow_nan=False)
    recommendation = fields.String(
        allow_none=True, load_default=None, validate=validate.OneOf(RECOMMENDATIONS)
    )
    summary = fields.String(allow_none=True, load_default=None)
    transcript_url = fields.Url(
        allow_none=True, load_default=None, schemes={"https", "http"}, require_tld=False
    )


class InterviewCompletedSchema(Schema):
    """The ``interview.completed`` message producers publish (SPEC 6).

    Unknown fields are refused, as on the HTTP API: a misspelt field is an error the
    producer should hear about (through the dead-letter queue), not a silent gap.
    """

    class Meta:
        unknown = RAISE

    event_id = fields.String(required=True, validate=validate.Regexp(EVENT_ID_PATTERN))
    event_type = fields.String(required=True, validate=validate.Equal(INTERVIEW_COMPLETED))
    occurred_at = UtcTimestamp(required=True)
    org_id = fields.UUID(required=True)
    data = fields.Nested(InterviewDataSchema, required=True)


# One instance, shared: building a schema (and its nested ones) costs more than loading
# a message with it, and loading does not change it.
_INTERVIEW_COMPLETED = InterviewCompletedSchema()


class InvalidMessage(Exception):
    """A broker message that cannot be processed; the message says why (for x-tenzo-error)."""


def parse_interview_completed(body: bytes | str) -> dict[str, Any]:
    """Decode and validate an ``interview.completed`` body, or raise InvalidMessage.

    The loaded dict has ``org_id`` as a UUID and timestamps as aware UTC datetimes;
    ``data`` keeps only the fields of the schema, with missing optional ones as None.
    """
    try:
        document = loads(body, allow_nul=True)  # an interview's text only travels in events
    except RefusedJSON as error:
        raise InvalidMessage(f"invalid JSON: {error.msg}") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise InvalidMessage(f"invalid JSON: {error}") from None
    if not isinstance(document, dict):
        raise InvalidMessage("invalid message: the JSON body must be an object")
    try:
        loaded: dict[str, Any] = _INTERVIEW_COMPLETED.load(document)
    except ValidationError as error:
        raise InvalidMessage(f"invalid message: {_describe(error.messages)}") from None
    return loaded


def _describe(messages: Any, path: str = "") -> str:
    """Flatten marshmallow's nested error messages: ``data.score: Not a valid number.``"""
    if isinstance(messages, dict):
        parts = [
            _describe(value, f"{path}.{key}" if path else str(key))
            for key, value in sorted(messages.items(), key=lambda item: str(item[0]))
        ]
        return "; ".join(parts)
    if isinstance(messages, list):
        texts = [m if isinstance(m, str) else _describe(m, path) for m in messages]
        return f"{path}: {' '.join(texts)}" if path else " ".join(texts)
    return f"{path}: {messages}"


def domain_event_routing_key(
    aggregate_type: str, event_type: str, data: dict[str, Any] | None = None
) -> str:
    """The routing key a relayed domain event is published with.

    ``("Webhook", "WebhookUrlChanged")`` → ``devtools.webhook.url_changed``. An event
    about a delivered event (its data has ``event_type``) adds that type as a last
    segment, so consumers can bind to one kind: ``DeliveryScheduled`` of a test event
    → ``devtools.delivery.scheduled.webhook_test``. Bind patterns such as
    ``devtools.webhook.#`` or ``devtools.#``.
    """
    event_name = event_type.removeprefix(aggregate_type)
    key = f"{DOMAIN_EVENT_PREFIX}.{_snake(aggregate_type)}.{_snake(event_name)}"
    delivered = (data or {}).get("event_type")
    if isinstance(delivered, str) and delivered:
        key += "." + re.sub(r"[^a-z0-9]+", "_", delivered.lower())
    return key


@functools.lru_cache(maxsize=256)
def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
