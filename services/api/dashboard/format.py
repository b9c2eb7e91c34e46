"""How the dashboard shows times (relative for reading, exact on hover) and form errors."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from marshmallow import ValidationError

from domain.errors import InvalidInput

Errors = dict[str, list[str]]

_UNITS = (
    ("year", 365 * 86400),
    ("month", 30 * 86400),
    ("day", 86400),
    ("hour", 3600),
    ("minute", 60),
)


def as_datetime(value: Any) -> datetime | None:
    """A datetime from a datetime or an ISO-8601 string (``Z`` allowed); naive means UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    moment: datetime = value.astimezone(UTC)
    return moment


def exact(value: Any) -> str:
    """``2026-11-27 17:00:05 UTC``."""
    moment = as_datetime(value)
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def relative(value: Any, now: datetime) -> str:
    """``just now``, ``5 minutes ago``, ``in 3 days``."""
    moment = as_datetime(value)
    if moment is None:
        return ""
    seconds = (now - moment).total_seconds()
    future, seconds = seconds < 0, abs(seconds)
    if seconds < 60:
        return "in less than a minute" if future else "just now"
    for unit, size in _UNITS:
        if seconds >= size:
            count = int(seconds // size)
            text = f"{count} {unit}{'' if count == 1 else 's'}"
            return f"in {text}" if future else f"{text} ago"
    return "just now"  # unreachable: every duration of a minute or more has a unit


def expiry(value: Any) -> str:
    """An expiry as the person chose it: ``Jan 31, 2027, end of day UTC`` for a key that
    expires as Feb 1 begins (a date alone means the end of that day, SPEC 13), else
    ``Jan 31, 2027, 17:00 UTC``."""
    moment = as_datetime(value)
    if moment is None:
        return ""
    if moment.time() == time(0):
        day = moment.date() - timedelta(days=1)
        return f"{day:%b} {day.day}, {day.year}, end of day UTC"
    return f"{moment:%b} {moment.day}, {moment.year}, {moment:%H:%M} UTC"


def hours_left(value: Any, now: datetime) -> str:
    """``in 23 h``, ``in 40 min``, ``in less than a minute``: an overlap's countdown."""
    moment = as_datetime(value)
    if moment is None:
        return ""
    seconds = (moment - now).total_seconds()
    if seconds < 60:
        return "in less than a minute" if seconds > 0 else "now"
    if seconds < 3600:
        return f"in {int(seconds // 60)} min"
    return f"in {int(seconds // 3600)} h"


def start_of_day(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def field_errors(error: ValidationError | InvalidInput) -> Errors:
    """Messages by form field, from the admin API's schemas or from the domain."""
    if isinstance(error, InvalidInput):
        return {error.field or "form": [str(error)]}
    messages: Any = error.messages
    if not isinstance(messages, dict):
        return {"form": [str(item) for item in messages]}
    return {key: [str(item) for item in value] for key, value in messages.items()}
