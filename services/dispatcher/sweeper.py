"""Finds pending deliveries that no dispatcher works on any more (SPEC 11).

Normally a pending delivery has an owner: the dispatcher holding its broker message,
which records an event at every attempt. A dispatcher can lose a delivery without
dying (a bug, an error it could not record) or die where nothing hands the delivery
on. The sweeper is the safety net for every such case: a delivery whose next step is
overdue by more than ``stalled_after`` of the retry policy (longer than an attempt may take)
has no live owner, and any dispatcher resumes it, claiming it with ``DeliveryResumed``.

It follows the event store's notification log, asking only for the Delivery events
that start and end a run, and reading only their topics and versions (``delivery_log``:
no stored state, no decryption): a delivery is pending from its ``Scheduled`` or
``RedeliveryRequested`` until its ``Succeeded`` or ``Failed``. Only a delivery pending
here for ``stalled_after`` is loaded, to check its schedule (its attempts are in the
aggregate, so the log's ``Attempted`` rows, one per attempt and most of the log, are
not read). Cost: two of the log's rows per delivery run, once, in pages; memory: the
pending ones.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from domain.deliveries import Delivery, RetryRule
from services.dispatcher import metrics
from services.infrastructure.storage import SqlTables, events_table

log = logging.getLogger("tenzo.sweeper")

PAGE = 1000
ENDED_EVENTS = ("Succeeded", "Failed")
PENDING_EVENTS = ("Scheduled", "RedeliveryRequested")
ENDED_TOPICS = frozenset(get_topic(getattr(Delivery, name)) for name in ENDED_EVENTS)
DELIVERY_TOPICS = sorted(
    ENDED_TOPICS | {get_topic(getattr(Delivery, name)) for name in PENDING_EVENTS}
)


@dataclass
class _Pending:
    version: int
    first_seen: float  # monotonic: when it became pending (approximately)
    check_at: float  # monotonic: when to load it and look at its schedule


class StalledDeliveries:
    """Which deliveries are pending, and which of them are stalled (thread-safe)."""

    def __init__(
        self,
        log: Callable[[int, int], list[tuple[int, UUID, int, str]]],
        load: Callable[[UUID], Delivery | None],
        schedule: RetryRule,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.log = log
        self.load = load
        self.schedule = schedule
        self.clock = clock
        self.position = 0
        self.pending: dict[UUID, _Pending] = {}
        self._lock = threading.Lock()

    def pending_ids(self) -> list[UUID]:
        """Every pending delivery in the event store, oldest first."""
        with self._lock:
            self._follow_log()
            return list(self.pending)

    def find(self) -> list[Delivery]:
        """The stalled deliveries, each returned once per ``stalled_after``."""
        with self._lock:
            return self._find()

    def _find(self) -> list[Delivery]:
        self._follow_log()
        now = self.clock()
        stalled = []
        for delivery_id, seen in list(self.pending.items()):
            if now < seen.check_at:
                continue
            delivery = self.load(delivery_id)
            if delivery is None or delivery.status != "pending":
                del self.pending[delivery_id]  # the log will say so too
                continue
            wall_now = datetime.now(UTC)
            seen.first_seen = now - (wall_now - delivery.created_on).total_seconds()
            if delivery.is_stalled(self.schedule, wall_now):
                stalled.append(delivery)
                seen.check_at = now + self.schedule.stalled_after
            else:
                due = max(delivery.next_attempt_due(self.schedule), delivery.modified_on)
                quiet_until = (due - wall_now).total_seconds() + self.schedule.stalled_after
                seen.check_at = now + max(quiet_until, 0.0) + 0.1
        self._measure(now)
        return stalled

    def _follow_log(self) -> None:
        while True:
            notifications = self.log(self.position, PAGE)
            now = self.clock()
            for position, delivery_id, version, topic in notifications:
                self._see(delivery_id, version, topic, now)
                self.position = position
            if len(notifications) < PAGE:
                return

    def _see(self, delivery_id: UUID, version: int, topic: str, now: float) -> None:
        if topic in ENDED_TOPICS:
            self.pending.pop(delivery_id, None)
            return
        seen = self.pending.get(delivery_id)
        if seen is None:
            self.pending[delivery_id] = _Pending(
                version, first_seen=now, check_at=now + self.schedule.stalled_after
            )
        elif version > seen.version:
            seen.version = version
            seen.check_at = max(seen.check_at, now + self.schedule.stalled_after)

    def _measure(self, now: float) -> None:
        metrics.PENDING_DELIVERIES.set(len(self.pending))
        oldest = min((seen.first_seen for seen in self.pending.values()), default=now)
        metrics.OLDEST_PENDING_SECONDS.set(max(now - oldest, 0.0))


def delivery_log(app: Any) -> Callable[[int, int], list[tuple[int, UUID, int, str]]]:
    """(position, delivery id, version, topic) of the Delivery events after a position,
    at most ``limit``: the log's rows without their stored state (SELECT * would carry
    every event's encrypted bytes to the sweeper, only to drop them)."""
    tables = SqlTables(app)
    postgres = tables.dialect == "postgres"
    marks = ", ".join(f":t{n}" for n in range(len(DELIVERY_TOPICS)))
    query = (  # noqa: S608 - names of our own tables, values as parameters
        "SELECT {position} AS position, originator_id, originator_version, topic FROM {events}"
        " WHERE {position} > :after AND topic IN ({marks}) ORDER BY {position} LIMIT :limit"
    ).format(
        position="notification_id" if postgres else "rowid",
        events=events_table(app),
        marks=marks,
    )
    topics = {f"t{n}": topic for n, topic in enumerate(DELIVERY_TOPICS)}

    def read(after: int, limit: int) -> list[tuple[int, UUID, int, str]]:
        rows = tables.read(query, {"after": after, "limit": limit, **topics})
        return [
            (
                int(row["position"]),
                _uuid(row["originator_id"]),
                int(row["originator_version"]),
                row["topic"],
            )
            for row in rows
        ]

    return read


def _uuid(value: UUID | str) -> UUID:
    """PostgreSQL's driver gives a UUID already; SQLite gives its text."""
    return value if isinstance(value, UUID) else UUID(str(value))
