"""The dashboard's audit log: the admin API's event history, for people.

Newest first by default (oldest first on request), a type picker whose names match
case-insensitively, a "configuration changes" view that leaves out deliveries, jobs
and candidates, a range of days, and readable titles: names of keys, the hint of an
admin token, the URL of the webhook, instead of class names and id fragments
(``describe``). The export takes the same filters, always oldest first (the order
that ``tenzo audit verify`` and receivers of the NDJSON read).
"""

from __future__ import annotations

import re
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

CONFIGURATION_TYPES = (
    "OrganizationCreated",
    "AdminTokenIssued",
    "AdminTokenRevoked",
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
    "CandidateErased",
)
"""What an auditor looks for: who changed credentials and the webhook, who erased whose
personal data, and when."""

KNOWN_EVENT_TYPES = (
    *CONFIGURATION_TYPES,
    "OrganizationAdminTokenRevoked",  # the organization's twin of AdminTokenRevoked
    "JobCreated",
    "JobUpdated",
    "CandidateCreated",
    "CandidateUpdated",
    "DeliveryScheduled",
    "DeliveryAttempted",
    "DeliverySucceeded",
    "DeliveryFailed",
    "DeliveryRedeliveryRequested",
    "DeliveryResumed",
)
"""The type picker's choices (a type name typed into the URL works too)."""

VIEWS = ("all", "configuration")
ORDERS = ("newest", "oldest")

_WORDS = re.compile(r"[A-Z][a-z]*")
_ACRONYMS = {"Api": "API", "Url": "URL"}


def readable_type(type_name: str) -> str:
    """``ApiKeyCreated`` → ``API key created``."""
    words = [_ACRONYMS.get(word, word) for word in _WORDS.findall(type_name)] or [type_name]
    return " ".join([words[0], *(w if w.isupper() else w.lower() for w in words[1:])])


class AuditFilter:
    """The audit log's filters from the query string: view, event type, order, a range
    of days (UTC), and the page's position."""

    def __init__(self, args: Any):
        canonical = {name.lower(): name for name in KNOWN_EVENT_TYPES}
        given_type = (args.get("type") or "").strip()
        given_type = canonical.get(given_type.lower(), given_type)
        self.view = args.get("view") if args.get("view") in VIEWS else "all"
        self.order = args.get("order") if args.get("order") in ORDERS else "newest"
        self.values: dict[str, str] = {
            "type": given_type,
            "from": (args.get("from") or "").strip(),
            "to": (args.get("to") or "").strip(),
        }
        # The filters given, as url_for's keyword arguments (typed as its values are).
        self.query: dict[str, Any] = {name: value for name, value in self.values.items() if value}
        if self.view != "all":
            self.query["view"] = self.view
        if self.order != "newest":
            self.query["order"] = self.order
        self.errors: Errors = {}
        given = {"type": given_type} if given_type else {}
        given |= {name: args[name] for name in ("after",) if args.get(name)}
        try:  # the admin API's rules, and so its messages
            valid = schemas.EventQuerySchema(only=("after", "type")).load(given)
            # ``before`` pages newest first, with the rules of ``after``.
            before = (
                schemas.EventQuerySchema(only=("after",)).load({"after": args["before"]})["after"]
                if args.get("before")
                else None
            )
        except ValidationError as error:
            self.errors.update(field_errors(error))
            valid, before = {"after": 0}, None
        self.type: str | None = valid.get("type")
        self.after: int = valid["after"]
        self.before: int | None = before
        self.since = self._day(args, "from")
        self.until = self._day(args, "to")

    @property
    def newest_first(self) -> bool:
        return self.order == "newest"

    @property
    def filtered(self) -> bool:
        return bool(self.type or self.since or self.until or self.view != "all")

    @property
    def position(self) -> int | None:
        """Where this page starts (None: the first page)."""
        return self.before if self.newest_first else (self.after or None)

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
        self, org_id: UUID, size: int, scan_limit: int = SCAN_LIMIT
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Up to ``size`` matching events from this page's position, in the filter's
        order, and the position the next page starts from (None at the end). Reads at
        most about ``scan_limit`` events, so a narrow date range over a long history
        answers in bounded time."""
        found: list[dict[str, Any]] = []
        if self.errors:
            return found, None
        start = self.before if self.newest_first else self.after
        for read, item in enumerate(self._history(org_id, start, self.newest_first), start=1):
            if self.matches(item):
                if len(found) == size:  # one more exists: there is a next page
                    return found, found[-1]["position"]
                found.append(item)
            if read >= scan_limit:  # stop here; "next" continues the search
                return found, item["position"]
        return found, None

    def matching(self, org_id: UUID) -> Iterator[dict[str, Any]]:
        """Every matching event, oldest first (for the export)."""
        return (item for item in self._history(org_id, 0, False) if self.matches(item))

    def _history(
        self, org_id: UUID, start: int | None, newest_first: bool
    ) -> Iterator[dict[str, Any]]:
        application = services().application
        types = CONFIGURATION_TYPES if self.view == "configuration" else None
        while True:
            if newest_first:
                batch = application.event_history(
                    org_id, limit=BATCH, type=self.type, types=types, before=start,
                    newest_first=True,
                )  # fmt: skip
            else:
                batch = application.event_history(
                    org_id, after=start or 0, limit=BATCH, type=self.type, types=types
                )
            yield from batch
            if len(batch) < BATCH:
                return
            start = batch[-1]["position"]


# -- readable titles ------------------------------------------------------------------------


class Names:
    """Names of the keys, tokens and jobs a page of events mentions, read at once."""

    def __init__(self, org_id: UUID, items: list[dict[str, Any]]):
        wanted: set[UUID] = set()
        for item in items:
            if item["aggregate_type"] in ("ApiKey", "AdminToken", "Job"):
                wanted.add(UUID(item["aggregate_id"]))
            actor = item.get("actor") or {}
            if actor.get("type") in ("api_key", "admin_token") and actor.get("id"):
                wanted.add(UUID(actor["id"]))
        found = services().application.many_aggregates.get_many(sorted(wanted))
        self._found = {
            key: aggregate
            for key, aggregate in found.items()
            if getattr(aggregate, "org_id", None) == org_id
        }

    def of(self, aggregate_id: str) -> Any:
        return self._found.get(UUID(aggregate_id))

    def actor(self, actor: dict[str, Any]) -> str:
        kind, ident = actor.get("type"), actor.get("id")
        found = self.of(ident) if ident and kind in ("api_key", "admin_token") else None
        if kind == "admin_token":
            hint = getattr(found, "token_hint", None)
            return f"admin token …{hint[-4:]}" if hint else "admin token"
        if kind == "api_key":
            return f"API key “{found.name}”" if found is not None else "API key"
        return str(kind or "system").replace("_", " ")

    def resource(self, item: dict[str, Any]) -> str:
        kind, found = item["aggregate_type"], self.of(item["aggregate_id"])
        if kind == "ApiKey" and found is not None:
            return f"API key “{found.name}”"
        if kind == "AdminToken" and found is not None:
            return f"admin token …{found.token_hint[-4:]}"
        if kind == "Job" and found is not None and getattr(found, "title", None):
            return f"job “{found.title}”"
        if kind == "Delivery":
            return "delivery"
        return readable_type(kind).lower() if kind != "ApiKey" else "API key"


def describe(item: dict[str, Any], names: Names) -> str:
    """One line a person reads: what happened to what (the actor is shown beside it)."""
    kind, data = item["type"], item.get("data") or {}
    resource = names.resource(item)
    if kind.startswith("Webhook"):
        if kind in ("WebhookConfigured", "WebhookReplaced"):
            return f"Webhook configured: {data.get('url', '')}"
        if kind == "WebhookUrlChanged":
            return f"Webhook URL changed to {data.get('url', '')}"
        if kind == "WebhookDisabled" and data.get("reason"):
            return f"Webhook delivery switched off: {data['reason']}"
        action = {"WebhookEnabled": "switched on", "WebhookDisabled": "switched off"}
        if kind in action:
            return f"Webhook delivery {action[kind]}"
    if kind == "DeliveryAttempted":
        status = data.get("status_code") or "no answer"
        return f"Delivery attempt {data.get('number', '')}: {status}"
    if kind == "DeliveryScheduled":
        return f"Delivery of {data.get('event_type', 'an event')} scheduled"
    if kind == "DeliveryRedeliveryRequested":
        run = f" (run {data['series']})" if data.get("series") else ""
        return f"Redelivery requested{run}" + (" by a recovery" if data.get("recovery") else "")
    # What follows the aggregate's own words: "ApiKey" + "Revoked", "Webhook" + "SecretChanged".
    aggregate_words = len(_WORDS.findall(item["aggregate_type"]))
    rest = " ".join(readable_type(kind).split(" ")[aggregate_words:]).lower()
    subject = resource[0].upper() + resource[1:]
    return f"{subject} {rest}".strip()
