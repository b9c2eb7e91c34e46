"""The dashboard's audit log filters: the admin API's event query, plus a range of days."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any
from uuid import UUID

from marshmallow import ValidationError

from contracts import admin as schemas
from contracts.field_rules import end_of_day
from services.api.context import services
from services.api.dashboard.format import Errors, as_datetime, field_errors, start_of_day

BATCH = 500
SCAN_LIMIT = 5000
"""Events read at most for one page, so a narrow date range over a long history
answers in bounded time; "Next page" continues the search."""

KNOWN_EVENT_TYPES = (
    "OrganizationCreated",
    "AdminTokenIssued",
    "AdminTokenRevoked",
    "OrganizationAdminTokenRevoked",
    "ApiKeyCreated",
    "ApiKeyRenamed",
    "ApiKeyRolled",
    "ApiKeyRevoked",
    "WebhookConfigured",
    "WebhookReplaced",
    "WebhookUrlChanged",
    "WebhookSecretChanged",
    "WebhookSecretRotated",
    "WebhookPreviousSecretForgotten",
    "WebhookEnabled",
    "WebhookDisabled",
    "WebhookDeleted",
    "JobCreated",
    "JobUpdated",
    "CandidateCreated",
    "CandidateUpdated",
    "DeliveryScheduled",
    "DeliveryAttempted",
    "DeliverySucceeded",
    "DeliveryFailed",
    "DeliveryRedeliveryRequested",
)
"""Suggestions for the event type filter (any type name can be typed)."""


class AuditFilter:
    """The audit log's filters from the query string: event type and a range of days (UTC)."""

    def __init__(self, args: Any):
        self.values: dict[str, str] = {
            name: (args.get(name) or "").strip() for name in ("type", "from", "to")
        }
        # The filters given, as url_for's keyword arguments (typed as its values are).
        self.query: dict[str, Any] = {name: value for name, value in self.values.items() if value}
        self.errors: Errors = {}
        given = {name: args[name] for name in ("type", "after") if args.get(name)}
        try:  # the admin API's rules, and so its messages
            valid = schemas.EventQuerySchema(only=("after", "type")).load(given)
        except ValidationError as error:
            self.errors.update(field_errors(error))
            valid = {"after": 0}
        self.type: str | None = valid.get("type")
        self.after: int = valid["after"]
        self.since = self._day(args, "from")
        self.until = self._day(args, "to")

    def _day(self, args: Any, name: str) -> date | None:
        value = args.get(name) or ""
        if not value:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.errors[name] = ["Not a valid date."]
            return None

    def matches(self, item: dict[str, Any]) -> bool:
        occurred = as_datetime(item["occurred_at"])
        assert occurred is not None
        if self.since and occurred < start_of_day(self.since):
            return False
        return not (self.until and occurred >= end_of_day(self.until))

    def page(
        self, org_id: UUID, after: int, size: int, scan_limit: int = SCAN_LIMIT
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Up to ``size`` matching events after a position, oldest first, and the position
        the next page starts after (None at the end). Reads at most about ``scan_limit``
        events, so a narrow date range over a long history answers in bounded time."""
        found: list[dict[str, Any]] = []
        if self.errors:
            return found, None
        for read, item in enumerate(self._history(org_id, after), start=1):
            if self.matches(item):
                if len(found) == size:  # one more exists: there is a next page
                    return found, found[-1]["position"]
                found.append(item)
            if read >= scan_limit:  # stop here; "next" continues the search
                return found, item["position"]
        return found, None

    def matching(self, org_id: UUID) -> Iterator[dict[str, Any]]:
        """Every matching event, oldest first (for the export)."""
        return (item for item in self._history(org_id, 0) if self.matches(item))

    def _history(self, org_id: UUID, after: int) -> Iterator[dict[str, Any]]:
        application = services().application
        while True:
            batch = application.event_history(org_id, after=after, limit=BATCH, type=self.type)
            yield from batch
            if len(batch) < BATCH:
                return
            after = batch[-1]["position"]
