"""Field types and checks every contract shares."""

from __future__ import annotations

from typing import Any

from marshmallow import fields, validate


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


# Refuses a string of only whitespace (a name nobody could read or pick). A pattern, not
# a function, so the OpenAPI document says it too (JSON Schema patterns search: one
# non-space character anywhere; marshmallow matches from the start: the same strings).
not_blank = validate.Regexp(r"\s*\S", error="Must not be blank.")
