"""The audit record of one event (SPEC 8), as auditors read it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid5

from marshmallow import Schema, fields

REDACTED = "[redacted]"
ERASED = "[erased]"
SECRET_FIELDS = frozenset({"secret", "key_hash", "token_hash"})
_ENVELOPE = frozenset(
    {"originator_id", "originator_version", "originator_topic", "timestamp", "actor"}
)


class ActorSchema(Schema):
    type = fields.String(required=True)
    id = fields.String(allow_none=True)


class AuditItemSchema(Schema):
    position = fields.Integer(required=True)
    id = fields.String(required=True)
    type = fields.String(required=True, metadata={"example": "ApiKeyCreated"})
    aggregate_type = fields.String(required=True)
    aggregate_id = fields.String(required=True)
    version = fields.Integer(required=True)
    occurred_at = fields.String(required=True)
    actor = fields.Nested(ActorSchema, required=True)
    data = fields.Dict(required=True)
    sealed = fields.Dict(
        metadata={"description": "Keyed digests of personal fields, chained in their place"}
    )
    previous_hash = fields.String(
        required=True, metadata={"description": "The hash of the item before (64 zeros: none)"}
    )
    hash = fields.String(
        required=True, metadata={"description": "SHA-256 of the item's canonical encoding"}
    )


class AuditHeadSchema(Schema):
    position = fields.Integer(required=True)
    hash = fields.String(required=True)


class AuditPageSchema(Schema):
    items = fields.List(fields.Nested(AuditItemSchema), required=True)
    next_after = fields.Integer(allow_none=True)


# Values that are their own JSON value: returned at once (the catalog's follower redacts
# every event it applies, so this is on its hot path).
_PLAIN = frozenset({str, int, float, bool, type(None)})


def redact_secrets(value: Any) -> Any:
    """Copy a JSON-like value with every secret or hash field replaced by "[redacted]"."""
    if type(value) in _PLAIN:
        return value
    if isinstance(value, dict):
        return {
            key: (REDACTED if key in SECRET_FIELDS and item is not None else redact_secrets(item))
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_secrets(item) for item in value]
    return to_json_value(value)


def to_json_value(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Decimal):
        return float(value)
    return value


def event_type_names(event: object) -> tuple[str, str]:
    """(aggregate type, past-tense event type), e.g. ("ApiKey", "ApiKeyCreated")."""
    qualname = type(event).__qualname__.split(".")
    return qualname[0], "".join(qualname[-2:])


def audit_item(event: Any, position: int, *, personal: bool = False) -> dict[str, Any]:
    """The redacted audit record of a domain event stored at a notification position.

    Personal fields the event store keeps sealed (an event's ``sealed`` tokens) are in
    ``sealed``, not in ``data``; with ``personal`` their decoded values are in ``data``
    too (``"[erased]"`` once erased)."""
    aggregate_type, type_name = event_type_names(event)
    data = {key: value for key, value in vars(event).items() if key not in _ENVELOPE}
    sealed = data.pop("sealed", None)
    if sealed:
        for name in sealed:
            value = data.pop(name, None)
            if personal:
                data[name] = ERASED if value is None else value
    item = {
        "position": position,
        "id": str(uuid5(event.originator_id, str(event.originator_version))),
        "type": type_name,
        "aggregate_type": aggregate_type,
        "aggregate_id": str(event.originator_id),
        "version": event.originator_version,
        "occurred_at": to_json_value(event.timestamp),
        "actor": getattr(event, "actor", None) or {"type": "system", "id": None},
        "data": redact_secrets(data),
    }
    if sealed:
        item["sealed"] = dict(sealed)
    return item


def with_personal_data(item: dict[str, Any], opened: dict[str, str | None]) -> dict[str, Any]:
    """An item as shown: each sealed field's value (from ``opened``, token → value) in
    ``data``, or ``"[erased]"``."""
    sealed = item.get("sealed")
    if not sealed:
        return item
    data = dict(item["data"])
    for name, token in sealed.items():
        value = opened.get(token)
        data[name] = ERASED if value is None else value
    return {**item, "data": data}
