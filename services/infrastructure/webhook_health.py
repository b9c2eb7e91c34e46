"""Endpoint health (SPEC 10), a projection the catalog's follower keeps in the same
transaction as its other tables, so every outcome is counted exactly once.

Three tables, per organization:

- ``tenzo_webhook_health``: the current streak (consecutive failed deliveries and when
  the first of them failed), and the last success and failure;
- ``tenzo_webhook_health_hours``: deliveries ended per hour, succeeded and failed;
- ``tenzo_webhook_latency_hours``: attempts per hour and duration bucket, from which the
  median is interpolated as Prometheus' ``histogram_quantile`` does.

Reading an organization's health is three indexed queries over at most 24 hourly rows
(and their buckets): never a scan of its history. A success, or the webhook being
enabled, configured or pointed at another URL, ends the streak.

After each batch the follower hands the streaks that grew to ``on_failing`` (the
auto-disable check, ``AutoDisable``), outside its transaction.
"""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from domain.endpoint_health import EndpointHealth
from domain.webhook_health import AutoDisableRule
from services.infrastructure.storage import SqlCursor, SqlTables, select_where_in

if TYPE_CHECKING:
    from prometheus_client import Counter

log = logging.getLogger("tenzo.webhook_health")

CREATE_TABLES = [
    """CREATE TABLE IF NOT EXISTS tenzo_webhook_health (
        org_id TEXT PRIMARY KEY,
        consecutive_failures BIGINT NOT NULL,
        failing_since TEXT,
        last_success_at TEXT,
        last_failure_at TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS tenzo_webhook_health_hours (
        org_id TEXT NOT NULL,
        hour BIGINT NOT NULL,
        succeeded BIGINT NOT NULL,
        failed BIGINT NOT NULL,
        PRIMARY KEY (org_id, hour)
    )""",
    """CREATE TABLE IF NOT EXISTS tenzo_webhook_latency_hours (
        org_id TEXT NOT NULL,
        hour BIGINT NOT NULL,
        bucket INTEGER NOT NULL,
        attempts BIGINT NOT NULL,
        PRIMARY KEY (org_id, hour, bucket)
    )""",
]

# Which events say something about the endpoint.
SIGNALS = {
    "DeliveryAttempted": "attempt",
    "DeliverySucceeded": "succeeded",
    "DeliveryFailed": "failed",
    "WebhookEnabled": "reset",
    "WebhookConfigured": "reset",
    "WebhookReplaced": "reset",
    "WebhookUrlChanged": "reset",
}
# Upper bounds (ms) of the attempt duration buckets; the last one is open.
LATENCY_BOUNDS_MS = (5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000)
# Hourly rows are kept this long (a read looks at the last 24 hours), then deleted.
KEPT_HOURS = 48
# Streaks older than this when indexed (a catalog catching up on old history) are not
# handed to the auto-disable check: it acts on failures as they happen.
RECENT = timedelta(minutes=10)


@functools.cache
def auto_disabled_counter() -> Counter:
    """``tenzo_webhooks_auto_disabled_total``, registered by the first disable: the
    catalog's follower runs in every process that builds the application, and a process
    exports only what it counts (services/infrastructure/metrics.py), not a zero for
    what it never does (the relay never indexes a failure). Imported here, not at the
    top: every process imports this module before it chooses its metrics folder."""
    from prometheus_client import Counter

    return Counter(
        "tenzo_webhooks_auto_disabled_total",
        "Webhooks disabled by the system after consecutive failed deliveries (SPEC 10)",
    )


STREAK_COLUMNS = (
    "org_id",
    "consecutive_failures",
    "failing_since",
    "last_success_at",
    "last_failure_at",
)
REPLACE_STREAK = """ON CONFLICT (org_id) DO UPDATE SET
    consecutive_failures = excluded.consecutive_failures,
    failing_since = excluded.failing_since, last_success_at = excluded.last_success_at,
    last_failure_at = excluded.last_failure_at"""
HOUR_COLUMNS = ("org_id", "hour", "succeeded", "failed")
ADD_TO_HOUR = """ON CONFLICT (org_id, hour) DO UPDATE SET
    succeeded = tenzo_webhook_health_hours.succeeded + excluded.succeeded,
    failed = tenzo_webhook_health_hours.failed + excluded.failed"""
LATENCY_COLUMNS = ("org_id", "hour", "bucket", "attempts")
ADD_TO_LATENCY = """ON CONFLICT (org_id, hour, bucket) DO UPDATE SET
    attempts = tenzo_webhook_latency_hours.attempts + excluded.attempts"""


@dataclass(frozen=True, slots=True)
class Signal:
    """One event about an organization's endpoint, as the follower decoded it."""

    org_id: str
    kind: str  # attempt, succeeded, failed, reset
    at: datetime
    duration_ms: int | None = None


@dataclass(frozen=True)
class FailureStreak:
    org_id: UUID
    consecutive: int
    failing_since: datetime
    last_failure_at: datetime


@dataclass
class _Streak:
    consecutive: int = 0
    failing_since: str | None = None
    last_success_at: str | None = None
    last_failure_at: str | None = None


def _hour(moment: datetime) -> int:
    return int(moment.timestamp() // 3600)


def _bucket(duration_ms: int) -> int:
    for index, bound in enumerate(LATENCY_BOUNDS_MS):
        if duration_ms <= bound:
            return index
    return len(LATENCY_BOUNDS_MS)


def _instant(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).astimezone(UTC)


class WebhookHealth:
    """Writes (inside the follower's transaction) and reads the health tables."""

    def __init__(self, tables: SqlTables):
        self.tables = tables  # created with CREATE_TABLES (the catalog's)
        self._pruned_hour: int | None = None  # the hour this process last pruned in

    def apply(self, cursor: SqlCursor, signals: Iterable[Signal]) -> list[FailureStreak]:
        """Count the signals of one batch, in log order; return the streaks that grew."""
        signals = list(signals)
        if not signals:
            return []
        streak_orgs = sorted({s.org_id for s in signals if s.kind != "attempt"})
        streaks = self._streaks(cursor, streak_orgs)
        hours: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
        latency: dict[tuple[str, int, int], int] = defaultdict(int)
        grew: set[str] = set()
        for signal in signals:
            if signal.kind == "attempt":
                key = (signal.org_id, _hour(signal.at), _bucket(signal.duration_ms or 0))
                latency[key] += 1
                continue
            streak = streaks[signal.org_id]
            at = signal.at.isoformat()
            if signal.kind == "succeeded":
                streak.consecutive, streak.failing_since = 0, None
                streak.last_success_at = at
                hours[(signal.org_id, _hour(signal.at))][0] += 1
                grew.discard(signal.org_id)
            elif signal.kind == "failed":
                streak.consecutive += 1
                streak.failing_since = streak.failing_since or at
                streak.last_failure_at = at
                hours[(signal.org_id, _hour(signal.at))][1] += 1
                grew.add(signal.org_id)
            else:  # reset: enabled again, or another endpoint
                streak.consecutive, streak.failing_since = 0, None
                grew.discard(signal.org_id)
        # One statement per table, rows in key order (concurrent followers lock alike).
        cursor.upsert_rows(
            "tenzo_webhook_health",
            STREAK_COLUMNS,
            [
                (org, s.consecutive, s.failing_since, s.last_success_at, s.last_failure_at)
                for org, s in sorted(streaks.items())
            ],
            REPLACE_STREAK,
        )
        cursor.upsert_rows(
            "tenzo_webhook_health_hours",
            HOUR_COLUMNS,
            [(org, hour, counts[0], counts[1]) for (org, hour), counts in sorted(hours.items())],
            ADD_TO_HOUR,
        )
        cursor.upsert_rows(
            "tenzo_webhook_latency_hours",
            LATENCY_COLUMNS,
            [(*key, count) for key, count in sorted(latency.items())],
            ADD_TO_LATENCY,
        )
        self._prune(cursor)
        return [
            FailureStreak(
                org_id=UUID(org),
                consecutive=streaks[org].consecutive,
                failing_since=_instant(streaks[org].failing_since) or datetime.now(UTC),
                last_failure_at=_instant(streaks[org].last_failure_at) or datetime.now(UTC),
            )
            for org in sorted(grew)
        ]

    def _prune(self, cursor: SqlCursor) -> None:
        """Delete the hourly rows older than ``KEPT_HOURS`` (reads use the last 24), at
        most once an hour in each process: the tables stay about two days of rows per
        organization, however long it has been sending."""
        hour = _hour(datetime.now(UTC))
        if hour == self._pruned_hour:
            return
        for table in ("tenzo_webhook_health_hours", "tenzo_webhook_latency_hours"):
            delete = f"DELETE FROM {table} WHERE hour < :oldest"  # noqa: S608 - our tables
            cursor.execute(delete, {"oldest": hour - KEPT_HOURS})
        self._pruned_hour = hour

    def _streaks(self, cursor: SqlCursor, orgs: list[str]) -> dict[str, _Streak]:
        rows = select_where_in(
            lambda sql, params: cursor.execute(sql, params).fetchall(),
            self.tables.dialect,
            "SELECT org_id, consecutive_failures, failing_since, last_success_at, "
            "last_failure_at FROM tenzo_webhook_health WHERE {match}",
            "org_id",
            orgs,
        )
        streaks: dict[str, _Streak] = defaultdict(_Streak)
        for row in rows:
            streaks[row["org_id"]] = _Streak(
                int(row["consecutive_failures"]),
                row["failing_since"],
                row["last_success_at"],
                row["last_failure_at"],
            )
        return streaks

    def read(self, org_id: UUID, now: datetime) -> EndpointHealth:
        """The organization's health over the current hour and the 23 before it."""
        org, since = str(org_id), _hour(now) - 24
        rows = self.tables.read(
            "SELECT consecutive_failures, failing_since, last_success_at, last_failure_at "
            "FROM tenzo_webhook_health WHERE org_id = :org",
            {"org": org},
        )
        streak = rows[0] if rows else None
        counts = self.tables.read(
            "SELECT COALESCE(SUM(succeeded), 0) AS succeeded, COALESCE(SUM(failed), 0) AS failed "
            "FROM tenzo_webhook_health_hours WHERE org_id = :org AND hour > :since",
            {"org": org, "since": since},
        )[0]
        buckets = self.tables.read(
            "SELECT bucket, SUM(attempts) AS attempts FROM tenzo_webhook_latency_hours "
            "WHERE org_id = :org AND hour > :since GROUP BY bucket",
            {"org": org, "since": since},
        )
        succeeded, failed = int(counts["succeeded"]), int(counts["failed"])
        return EndpointHealth(
            deliveries_24h=succeeded + failed,
            succeeded_24h=succeeded,
            failed_24h=failed,
            consecutive_failures=int(streak["consecutive_failures"]) if streak else 0,
            last_success_at=_instant(streak["last_success_at"]) if streak else None,
            last_failure_at=_instant(streak["last_failure_at"]) if streak else None,
            p50_ms_24h=median_ms({int(b["bucket"]): int(b["attempts"]) for b in buckets}),
            failing_since=_instant(streak["failing_since"]) if streak else None,
        )


def median_ms(buckets: dict[int, int]) -> int | None:
    """The median attempt duration, interpolated linearly inside its bucket (the open
    last bucket counts as its lower bound); None without attempts."""
    total = sum(buckets.values())
    if not total:
        return None
    half, seen = total / 2, 0
    for index in range(len(LATENCY_BOUNDS_MS) + 1):
        count = buckets.get(index, 0)
        if count and seen + count >= half:
            if index == len(LATENCY_BOUNDS_MS):
                return LATENCY_BOUNDS_MS[-1]
            lower = LATENCY_BOUNDS_MS[index - 1] if index else 0
            upper = LATENCY_BOUNDS_MS[index]
            return round(lower + (upper - lower) * (half - seen) / count)
        seen += count
    return None  # unreachable: the counts add up to ``total``


class AutoDisable:
    """The follower's ``on_failing``: asks the application to disable the webhook of
    every organization whose recent streak of failures the rule says is enough."""

    def __init__(self, application: Any, rule: AutoDisableRule):
        self.application = application
        self.rule = rule

    def __call__(self, streaks: list[FailureStreak]) -> None:
        now = datetime.now(UTC)
        for streak in streaks:
            if now - streak.last_failure_at > RECENT:
                continue
            if self.rule.reason(streak.consecutive, streak.failing_since, now) is None:
                continue
            try:
                disabled = self.application.disable_failing_webhook(
                    streak.org_id, streak.consecutive, streak.failing_since, self.rule
                )
            except Exception:  # noqa: BLE001 - checked again at the next failure
                log.exception("auto-disable of organization %s's webhook failed", streak.org_id)
                continue
            if disabled:
                auto_disabled_counter().inc()
                log.warning(
                    "webhook of organization %s disabled after %d failed deliveries in a row",
                    streak.org_id,
                    streak.consecutive,
                )


OnFailing = Callable[[list[FailureStreak]], None]
