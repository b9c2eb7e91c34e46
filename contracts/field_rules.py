"""Field types and checks every contract shares."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
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


_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


def end_of_day(day: date) -> datetime:
    """The first moment after ``day`` in UTC: what "expires on 2027-01-31" means."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)


class ExpiryDateTime(fields.DateTime):
    """An ISO-8601 date-time (UTC when it has no offset), or a date alone, which means
    the end of that day in UTC: ``"2027-01-31"`` is ``2027-02-01T00:00:00Z``, so a key
    "expiring on" a day works all that day (SPEC 13; the dashboard's date picker means
    the same)."""

    default_error_messages = {
        "invalid": "Not a valid date-time or date (ISO-8601: 2027-01-31T17:00:00Z, 2027-01-31)."
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if isinstance(value, str) and _DATE_ONLY.fullmatch(value.strip()):
            try:
                return end_of_day(date.fromisoformat(value.strip()))
            except ValueError:
                raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE) from None
        moment: datetime = super()._deserialize(value, attr, data, **kwargs)
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
