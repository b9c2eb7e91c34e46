"""Bodies of the admin API's delivery endpoints (SPEC 5.2)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

DELIVERY_STATUSES = ("pending", "succeeded", "failed")
PAGE_SIZE_MAX = 100


class AttemptSchema(Schema):
    number = fields.Integer(required=True, metadata={"description": "1, 2, 3… across redeliveries"})
    started_at = fields.DateTime(required=True)
    status_code = fields.Integer(allow_none=True, metadata={"description": "null: no response"})
    duration_ms = fields.Integer(required=True)
    error = fields.String(
        allow_none=True, metadata={"description": "why it failed; null on success"}
    )
    response_excerpt = fields.String(
        required=True, metadata={"description": "the first 1 KiB of the response body"}
    )
    cause = fields.String(
        allow_none=True,
        metadata={
            "description": "one plain sentence saying what went wrong and what to check "
            "(with the address and port where it matters); null on success",
            "example": "Connection refused by 203.0.113.5:443 — is your server listening "
            "on that port?",
        },
    )
    request_headers = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        required=True,
        metadata={"description": "the headers exactly as sent, signatures included"},
    )
    response_headers = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        required=True,
        metadata={
            "description": "the response headers as received (at most 4 KiB kept); headers "
            "that may carry the receiver's secrets (Set-Cookie, Authorization, …) are "
            "masked; empty when nothing answered"
        },
    )
    run = fields.Integer(
        required=True,
        metadata={"description": "1 for the first series of attempts, 2, 3… for redeliveries"},
    )


class DeliverySchema(Schema):
    id = fields.UUID(required=True)
    event_id = fields.String(required=True, metadata={"description": "sent as X-Webhook-Id"})
    event_type = fields.String(required=True, metadata={"example": "interview.completed"})
    url = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(DELIVERY_STATUSES))
    attempts = fields.List(fields.Nested(AttemptSchema), required=True)
    created_at = fields.DateTime(required=True)
    completed_at = fields.DateTime(allow_none=True)
    request_body = fields.String(
        required=True, metadata={"description": "the exact bytes POSTed (UTF-8 JSON)"}
    )
    next_attempt_at = fields.DateTime(
        allow_none=True,
        metadata={"description": "when the next attempt is due; null once the delivery ended"},
    )
    run = fields.Integer(
        required=True,
        metadata={"description": "the current series: 1, then 2, 3… after each redelivery"},
    )


class DeliveryPageSchema(Schema):
    items = fields.List(fields.Nested(DeliverySchema), required=True)
    next_cursor = fields.String(allow_none=True, metadata={"description": "null on the last page"})


class DeliveryQuerySchema(Schema):
    status = fields.String(validate=validate.OneOf(DELIVERY_STATUSES))
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=PAGE_SIZE_MAX))
    cursor = fields.String(
        validate=validate.Length(min=1, max=200),
        metadata={"description": "next_cursor of the previous page"},
    )


class DeliveryCreatedSchema(Schema):
    delivery_id = fields.UUID(required=True)


class UtcDateTime(fields.DateTime):
    """An ISO-8601 date-time; one without an offset is read as UTC."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        moment: datetime = super()._deserialize(value, attr, data, **kwargs)
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class RecoverSchema(Schema):
    """SPEC 10: redeliver every failed delivery created in [since, until)."""

    since = UtcDateTime(
        required=True,
        metadata={"description": "ISO-8601; deliveries created at or after it (UTC if no offset)"},
    )
    until = UtcDateTime(
        metadata={"description": "ISO-8601; deliveries created before it (default: now)"}
    )

    @validates_schema
    def _window(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "until" in data and data["until"] <= data["since"]:
            raise ValidationError("Must be later than since.", field_name="until")


class RecoveredSchema(Schema):
    count = fields.Integer(
        required=True,
        metadata={"description": "failed deliveries redelivered, each as a new run"},
    )
