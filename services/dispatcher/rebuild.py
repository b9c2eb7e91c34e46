"""Rebuilding the dispatcher's projection from the event store, in constant memory.

The notification log is read in batches (``batch_size``, 1,000 by default). Each
Webhook, Job or Candidate event is applied to that aggregate as the rebuild last saw
it, kept in a bounded least-recently-used set (``RecentAggregates``, 5,000 by default);
an aggregate evicted from it, or first met in the middle of its history (a resumed
rebuild), is read from the event store at the event's version. A batch's events are
decoded together, and the candidates' personal fields opened and sealed again with one
read of their keys each time (not two statements per candidate). Each batch writes the
rows of the aggregates it touched (one ``executemany`` per table) and the rebuild's
own position (row ``dispatcher-rebuild`` of ``tenzo_dispatch_position``) in one
transaction, so memory does not grow with the history and an interrupted rebuild
resumes where its last batch ended. The first batch empties the tables in the same
transaction; the last one clears the rebuild's position and sets the projection's.

Rows are upserted with the projection's version guard, so a live dispatcher writing
beside a rebuild is never moved back, and reads that find a row missing or behind the
event store project that aggregate on the spot (read your writes, projection.py). The
projection's position only advances: a live dispatcher may be past the rebuild's end.

One rebuild at a time (services/infrastructure/exclusive_lock.py: a session advisory
lock on PostgreSQL, a lock file beside an SQLite database): ``run`` waits for another
rebuild to end (`tenzo projections rebuild`), ``run_if_needed`` skips when one is under
way (a dispatcher starting: the other one fills the tables) and checks again, once it
holds the lock, that a rebuild is still needed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.application import LRUCache

from domain.application import DeveloperTools
from services.infrastructure.exclusive_lock import exclusively
from services.infrastructure.personal_data import decode_all
from services.infrastructure.positions import DISPATCH_TABLE, Position
from services.infrastructure.storage import SqlCursor, SqlTables

REBUILD_POSITION_NAME = "dispatcher-rebuild"
PROJECTED_TABLES = ("webhooks", "jobs", "candidates")
REBUILD_LOCK = 7243193  # a PostgreSQL advisory lock key, not used by another lock of ours


class RecentAggregates:
    """The aggregates a rebuild met last, never more than ``max_size`` of them.

    ``peak`` is the most it held at once; ``store_reads`` counts the aggregates read
    from the event store because they were not here (evicted, or never seen)."""

    def __init__(self, max_size: int = 5000):
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.max_size = max_size
        self._cache: LRUCache[UUID, Any] = LRUCache(maxsize=max_size)
        self.peak = 0
        self.store_reads = 0

    def __len__(self) -> int:
        return len(self._cache.cache)

    def get(self, aggregate_id: UUID) -> Any | None:
        try:
            return self._cache.get(aggregate_id)
        except KeyError:
            return None

    def put(self, aggregate_id: UUID, aggregate: Any) -> None:
        self._cache.put(aggregate_id, aggregate)
        self.peak = max(self.peak, len(self))


class RebuiltProjection(Protocol):
    """What a rebuild needs of the projection it refills (projection.py's
    ``DispatchProjection``, which this module cannot import: it imports this one)."""

    application: DeveloperTools
    tables: SqlTables

    @property
    def projected_types(self) -> tuple[str, ...]: ...

    def write_rows(
        self, cursor: SqlCursor, aggregate_type: str, rows: list[dict[str, Any]]
    ) -> None: ...

    def advance_position(self, cursor: SqlCursor, position: int) -> None: ...

    def rows(self, aggregate_type: str, aggregates: list[Any]) -> list[dict[str, Any]]: ...


class ProjectionRebuild:
    """One rebuild of a projection's tables (see the module's docstring)."""

    def __init__(
        self,
        projection: RebuiltProjection,
        recent: RecentAggregates | None = None,
        batch_size: int = 1000,
    ):
        self.projection = projection
        self.application = projection.application
        self.recent = recent if recent is not None else RecentAggregates()
        self.batch_size = batch_size
        self.position = Position(self.application, DISPATCH_TABLE, REBUILD_POSITION_NAME)

    def unfinished(self) -> bool:
        """Whether an earlier rebuild stopped before its end (and can resume)."""
        return self.position.read() > 0

    def run(
        self,
        progress: Callable[[int], None] | None = None,
        restart: bool = False,
        waiting: Callable[[], None] | None = None,
    ) -> int:
        """Fill the tables up to the log's newest event when it starts; return that
        position. Resumes an interrupted rebuild unless ``restart``. ``progress(n)`` is
        called with the number of events each batch read. Waits for another rebuild
        under way to end first (calling ``waiting()`` then)."""
        tables = self.projection.tables
        with exclusively(tables, REBUILD_LOCK, wait=False) as held:
            if held:
                return self._run(progress, restart)
        if waiting:
            waiting()
        with exclusively(tables, REBUILD_LOCK, wait=True):
            return self._run(progress, restart)

    def run_if_needed(self, needed: Callable[[], bool]) -> int | None:
        """Rebuild (resuming) if ``needed()`` and no other rebuild is under way; return
        the position reached, or None when nothing was done."""
        with exclusively(self.projection.tables, REBUILD_LOCK, wait=False) as held:
            if held and needed():
                return self._run(None, restart=False)
        return None

    def _run(self, progress: Callable[[int], None] | None, restart: bool) -> int:
        recorder = self.application.recorder
        newest = recorder.max_notification_id() or 0
        reached = 0 if restart else self.position.read()
        empty_first = reached == 0
        while reached < newest:
            notifications = recorder.select_notifications(
                start=reached + 1, limit=self.batch_size, stop=newest
            )
            if not notifications:
                break
            rows = self._rows(notifications)
            reached = notifications[-1].id
            with self.projection.tables.transaction() as cursor:
                if empty_first:
                    _empty(cursor)
                    empty_first = False
                for aggregate_type, batch in rows.items():
                    self.projection.write_rows(cursor, aggregate_type, batch)
                self.position.set(cursor, reached)
            if progress:
                progress(len(notifications))
        with self.projection.tables.transaction() as cursor:
            if empty_first:  # nothing was read: an empty log
                _empty(cursor)
            self.position.set(cursor, 0)
            self.projection.advance_position(cursor, reached)
        return reached

    def _rows(self, notifications: Sequence[Any]) -> dict[str, list[dict[str, Any]]]:
        """The rows of the aggregates this batch changed, at their last version in it."""
        projected = [n for n in notifications if _type_of(n) in self.projection.projected_types]
        # One read of the personal keys for the batch's sealed fields, not one per event.
        events = decode_all(self.application, projected)
        changed: dict[str, dict[UUID, Any]] = {}
        for notification, event in zip(projected, events, strict=True):
            aggregate = self._aggregate_at(notification, event)
            changed.setdefault(_type_of(notification), {})[aggregate.id] = aggregate
        return {
            aggregate_type: self.projection.rows(aggregate_type, list(aggregates.values()))
            for aggregate_type, aggregates in changed.items()
        }

    def _aggregate_at(self, notification: Any, event: Any) -> Any:
        """The aggregate as this event (decoded from the notification) leaves it: the
        event applied to the one met before, or the aggregate read from the event store
        at the event's version."""
        aggregate_id = notification.originator_id  # a UUID from PostgreSQL
        if not isinstance(aggregate_id, UUID):
            aggregate_id = UUID(str(aggregate_id))
        version = notification.originator_version
        known = self.recent.get(aggregate_id)
        if version == 1 or (known is not None and known.version == version - 1):
            aggregate = event.mutate(known if version > 1 else None)
        else:
            aggregate = self.application.repository.get(aggregate_id, version=version)
            self.recent.store_reads += 1
        self.recent.put(aggregate_id, aggregate)
        return aggregate


def _type_of(notification: Any) -> str:
    """The aggregate type of a stored event, from its topic (``module:Job.Created``)."""
    return str(notification.topic.rsplit(":", 1)[-1].split(".")[0])


def _empty(cursor: Any) -> None:
    for table in PROJECTED_TABLES:
        cursor.execute(f"DELETE FROM tenzo_dispatch_{table}")  # noqa: S608 - known tables
