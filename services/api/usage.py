"""API-key usage: counters that are not audit facts, kept beside the event store.

Admin tokens' ``last_used_at`` is counted here too, under the token's id (ids of keys
and tokens are derived from distinct hashes, so they never collide): a use is not an
audit fact, and an event per admin request would grow the history without telling
anyone anything.

Counting must not add a write to every request, nor serialise requests: each process
batches in memory (a lock-protected dict, key id → count and last use) and a daemon
thread flushes the batch at least once a second, and again when the process stops
serving (``ApiServices.close`` in services/bootstrap.py: `tenzo serve` on exit,
gunicorn's worker_exit hook). A flush is one transaction of atomic
``INSERT … ON CONFLICT DO UPDATE`` increments, so counts from any number of threads
and processes add up exactly; a flush that fails puts its counts back to be retried.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import Application

from services.api import metrics
from services.infrastructure.storage import SqlTables, select_where_in

log = logging.getLogger("tenzo.usage")

FLUSH_INTERVAL_SECONDS = 0.5

CREATE_TABLES = [
    """CREATE TABLE IF NOT EXISTS tenzo_api_key_usage (
        key_id TEXT PRIMARY KEY,
        usage_count BIGINT NOT NULL,
        last_used_at TEXT
    )""",
]

# last_used_at is ISO-8601 text in UTC with a fixed width, so later means greater
# on both databases (portable, unlike GREATEST/MAX).
UPSERT = """
INSERT INTO tenzo_api_key_usage (key_id, usage_count, last_used_at)
VALUES (:key_id, :count, :last_used_at)
ON CONFLICT (key_id) DO UPDATE SET
    usage_count = tenzo_api_key_usage.usage_count + excluded.usage_count,
    last_used_at = CASE
        WHEN tenzo_api_key_usage.last_used_at IS NULL
          OR excluded.last_used_at > tenzo_api_key_usage.last_used_at
        THEN excluded.last_used_at
        ELSE tenzo_api_key_usage.last_used_at
    END
"""

READ_MANY = "SELECT key_id, usage_count, last_used_at FROM tenzo_api_key_usage WHERE {match}"


@dataclass(frozen=True)
class Usage:
    count: int = 0
    last_used_at: datetime | None = None


def _timestamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


class UsageCounter:
    """Records how often, and when last, each API key was used; reads it back."""

    def __init__(self, app: Application[Any], flush_interval: float = FLUSH_INTERVAL_SECONDS):
        self.tables = SqlTables(app, CREATE_TABLES)
        self.flush_interval = flush_interval
        self._pending: dict[str, tuple[int, datetime]] = {}
        self._lock = threading.Lock()  # guards _pending and _flusher
        self._flushing = threading.Lock()  # one flush at a time; exit waits for it
        self._flusher: threading.Thread | None = None

    def record(self, key_id: UUID, at: datetime) -> None:
        """Count one use of a key (in memory; written by the next flush)."""
        key = str(key_id)
        with self._lock:
            count, last = self._pending.get(key, (0, at))
            self._pending[key] = (count + 1, max(last, at))
            if self._flusher is None:
                self._flusher = threading.Thread(
                    target=self._flush_while_busy, name="tenzo-usage-flush", daemon=True
                )
                self._flusher.start()

    def flush(self) -> None:
        """Write every pending count to the database now."""
        with self._flushing:
            with self._lock:
                batch, self._pending = self._pending, {}
            if not batch:
                return
            try:
                with self.tables.transaction() as cursor:
                    # One order in every process, so concurrent flushes cannot deadlock.
                    for key, (count, last) in sorted(batch.items()):
                        params = {"key_id": key, "count": count, "last_used_at": _timestamp(last)}
                        cursor.execute(UPSERT, params)
            except Exception:
                if self._store_closed():
                    # The application was closed under us (shutdown): nowhere to write.
                    log.warning(
                        "%d uses of %d API keys not counted: the event store is closed",
                        sum(count for count, _ in batch.values()),
                        len(batch),
                    )
                    return
                with self._lock:
                    for key, (count, last) in batch.items():
                        pending, pending_last = self._pending.get(key, (0, last))
                        self._pending[key] = (pending + count, max(last, pending_last))
                raise
            metrics.USAGE_FLUSHES.inc()

    def read_many(self, key_ids: Iterable[UUID]) -> dict[UUID, Usage]:
        """The flushed usage of each key (every process's uses, up to a second behind),
        in one query (per ``IN_LIST_CHUNK`` keys on SQLite): a list of keys reads its
        counts at once."""
        wanted = list(dict.fromkeys(key_ids))
        found: dict[UUID, Usage] = {}
        with self.tables.transaction(commit=False) as cursor:
            rows = select_where_in(
                lambda sql, params: cursor.execute(sql, params).fetchall(),
                self.tables.dialect,
                READ_MANY,
                "key_id",
                [str(key_id) for key_id in wanted],
            )
        for row in rows:
            last = row["last_used_at"]
            found[UUID(row["key_id"])] = Usage(
                int(row["usage_count"]), datetime.fromisoformat(last) if last else None
            )
        return {key_id: found.get(key_id, Usage()) for key_id in wanted}

    def _store_closed(self) -> bool:
        return bool(getattr(self.tables.datastore.pool, "closed", False))

    def _flush_while_busy(self) -> None:
        """Flush every interval; end when a flush leaves nothing pending (the next
        ``record`` starts a new flusher), so idle counters hold no thread."""
        stop = threading.Event()
        while True:
            stop.wait(self.flush_interval)
            try:
                self.flush()
            except Exception:
                log.exception("flushing API key usage failed; retrying")
            with self._lock:
                if not self._pending:
                    self._flusher = None
                    return
