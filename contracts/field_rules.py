"""Field types and checks every contract shares."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields


class StrictBoolean(fields.Boolean):
    """Only JSON ``true`` and ``false``.

    marshmallow's Boolean also takes ``"yes"``, ``"false"``, ``1``, ``"on"``…, so a
    typo or a string from a form could switch a webhook on; a client sending those
    has a bug it should hear about (422) instead.
    """

    default_error_messages = {"invalid": "Must be true or false."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


def not_blank(value: str) -> None:
    """Refuse a string of only whitespace (a name nobody could read or pick)."""
    if not value.strip():
        raise ValidationError("Must not be blank.")
