"""The catalog's follower: a background thread that applies the notification log to the
catalog's tables in batches, so that no reader ever applies events itself.

One follower runs in every process that uses the catalog (started on first use, stopped
by ``Catalog.close``). It polls every ``poll_interval`` and is woken at once by a write
of its own process. Each batch (up to ``batch_size`` events) is one transaction that
writes the index rows, the audit rows (each linked into its organization's hash chain,
contracts/audit_chain.py, from the heads in ``tenzo_audit_heads``, which it moves on)
and the catalog's position, moved from the
position it read (compare-and-set), so each event is applied exactly once whichever
process applies it. On PostgreSQL the transaction first takes an advisory lock (or
gives way): one follower works at a time and the others only watch the position.

A batch costs one read of the log, one lookup of the organizations of the aggregates it
changes, and bulk writes (COPY on PostgreSQL, executemany on SQLite): the catch-up runs
at tens of thousands of events a second rather than a statement per event. Events its
own process stores through the dispatcher's committer are handed over as they are
encoded (``hand_over``) and applied without decoding them again, when the log's bytes
are the ones handed over.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError, OperationalError

from contracts.audit import audit_item, event_type_names
from contracts.audit_chain import GENESIS, link, unlinked
from services.infrastructure.personal_data import sealed_decoder
from services.infrastructure.positions import Position, PositionMoved
from services.infrastructure.storage import SqlCursor, SqlTables, select_where_in
from services.infrastructure.webhook_health import (
    SIGNALS,
    FailureStreak,
    OnFailing,
    Signal,
    WebhookHealth,
)

log = logging.getLogger("tenzo.catalog")

FOLLOWER_LOCK = 7243192  # a PostgreSQL advisory lock key, not used by another lock of ours
BATCH_SIZE = 2000
POLL_INTERVAL_SECONDS = 0.05
IDLE_MS = 120_000  # how long the follower's transaction may wait while it decodes a batch
HANDED_LIMIT = 5_000  # events handed over by writers, not yet reached (hand_over)
HANDED_SECONDS = 30.0

# How events set an aggregate's status in the catalog (for filtered lists).
STATUS_BY_EVENT = {
    "DeliveryScheduled": "pending",
    "DeliveryRedeliveryRequested": "pending",
    "DeliverySucceeded": "succeeded",
    "DeliveryFailed": "failed",
}
# Which attribute of an event names the aggregate's parent (for filtered lists).
PARENT_ATTRIBUTE = {"Candidate": "job_id"}

CATALOG_COLUMNS = ("aggregate_id", "org_id", "aggregate_type", "position", "parent_id", "status")
AUDIT_COLUMNS = ("position", "org_id", "aggregate_id", "type", "item")
HEAD_COLUMNS = ("org_id", "position", "hash")
MOVE_HEAD = "ON CONFLICT (org_id) DO UPDATE SET position = excluded.position, hash = excluded.hash"


def write_heads(cursor: SqlCursor, heads: dict[str, tuple[int, str]]) -> None:
    """Set the heads (organization → last position and hash of its chain), in one
    statement, in organization order."""
    rows = [(org, position, digest) for org, (position, digest) in sorted(heads.items())]
    cursor.upsert_rows("tenzo_audit_heads", HEAD_COLUMNS, rows, MOVE_HEAD)


@dataclass(frozen=True, slots=True)
class Decoded:
    """What the catalog needs of one event, decoded from the log."""

    position: int
    aggregate_id: str
    version: int
    aggregate_type: str
    type_name: str
    org_id: str  # from the event itself: right for a creating event
    status: str | None
    parent_id: str | None
    item: tuple[str, str]  # the redacted audit item, unlinked (contracts/audit_chain.py)
    signal: str | None  # what it says about the endpoint's health (webhook_health.py)
    at: datetime
    duration_ms: int | None

    @classmethod
    def of(cls, position: int, event: Any) -> Decoded:
        aggregate_type, type_name = event_type_names(event)
        parent = getattr(event, PARENT_ATTRIBUTE.get(aggregate_type, ""), None)
        return cls(
            position=position,
            aggregate_id=str(event.originator_id),
            version=event.originator_version,
            aggregate_type=aggregate_type,
            type_name=type_name,
            org_id=str(getattr(event, "org_id", None) or event.originator_id),
            status=STATUS_BY_EVENT.get(type_name),
            parent_id=None if parent is None else str(parent),
            item=unlinked(audit_item(event, position)),
            signal=SIGNALS.get(type_name),
            at=event.timestamp,
            duration_ms=getattr(event, "duration_ms", None),
        )


class CatalogFollower:
    """Keeps the catalog's tables up with the notification log, in a thread of its own."""

    def __init__(
        self,
        app: Application[Any],
        tables: SqlTables,
        position: Position,
        *,
        batch_size: int = BATCH_SIZE,
        poll_interval: float = POLL_INTERVAL_SECONDS,
        health: WebhookHealth | None = None,
        on_failing: OnFailing | None = None,
    ):
        self.app = app
        self.health = health
        self.on_failing = on_failing
        self.tables = tables
        self.position = position
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._progress = threading.Condition()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        # One thread decodes the next batch while the follower writes the current one.
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="tenzo-catalog-reader")
        self._ahead: tuple[int, Future[list[Decoded]]] | None = None
        # Events this process's writers are storing (hand_over), by (aggregate id,
        # version), oldest first: (when handed over, stored bytes, sealed form).
        self._handed: OrderedDict[tuple[str, int], tuple[float, bytes, Any]] = OrderedDict()
        self._handed_lock = threading.Lock()
        self.handed_applied = 0  # how many events were applied from there (for tests)

    # -- the thread -----------------------------------------------------------------------

    def start(self) -> None:
        """Start following (once; later calls do nothing, as do calls after close)."""
        if self._thread is not None or self._stopping.is_set():
            return
        with self._start_lock:
            if self._thread is None and not self._stopping.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="tenzo-catalog-follower", daemon=True
                )
                self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        """Look at the log now rather than at the next poll (a write of this process)."""
        self._wake.set()

    def hand_over(self, events: list[tuple[Any, Any]]) -> None:
        """Events this process is storing, as (stored event, its sealed form: what
        ``sealed_decoder`` reads back from it), given before they are committed. The
        follower uses the sealed form of a notification whose stored bytes are these
        (AES-GCM's random nonce makes them unique: a conflicting write of the same
        version by another process never matches) and decodes any other. Kept for
        ``HANDED_SECONDS``, at most ``HANDED_LIMIT``: beyond, events are decoded."""
        now = time.monotonic()
        with self._handed_lock:
            for stored, sealed in events:
                key = (str(stored.originator_id), stored.originator_version)
                self._handed[key] = (now, stored.state, sealed)
            self._forget_handed(now)

    def _forget_handed(self, now: float) -> None:
        """Drop what was handed over too long ago, or beyond the limit (oldest first)."""
        while self._handed:
            handed_at = next(iter(self._handed.values()))[0]
            if len(self._handed) <= HANDED_LIMIT and handed_at > now - HANDED_SECONDS:
                return
            self._handed.popitem(last=False)

    def _take_handed(self, notification: Any) -> Any:
        """The sealed form handed over for this notification, or None."""
        key = (str(notification.originator_id), notification.originator_version)
        with self._handed_lock:
            entry = self._handed.pop(key, None)
        if entry is None or entry[1] != notification.state:
            return None
        self.handed_applied += 1
        return entry[2]

    def wait_for_progress(self, timeout: float) -> None:
        """Block until this follower applies a batch, or ``timeout`` seconds pass."""
        with self._progress:
            self._progress.wait(timeout)

    def close(self) -> None:
        """Stop the thread after the batch in hand (if any); wait for it."""
        self._stopping.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=30)
        self._reader.shutdown(wait=True, cancel_futures=True)

    def _run(self) -> None:
        while not self._stopping.is_set():
            # Cleared before the batch, so a wake() landing while it is applied (or
            # between the wait and here) makes the next wait return at once.
            self._wake.clear()
            try:
                applied = self.apply_next_batch()
            except Exception:
                if self._stopping.is_set():
                    return  # the event store was closed under us
                log.exception("catalog follower: applying a batch failed; retrying")
                self._stopping.wait(1.0)
                continue
            if applied:
                with self._progress:
                    self._progress.notify_all()
                continue
            self._wake.wait(self.poll_interval)

    # -- one batch ------------------------------------------------------------------------

    def apply_next_batch(self) -> bool:
        """Apply the next batch of the log; return whether anything was applied (False
        when caught up, or when another follower holds the lock or moved the position)."""
        postgres = self.tables.dialect == "postgres"
        last = self.position.read()
        batch = self._read_ahead_from(last)
        if batch is None:
            if last >= (self.app.recorder.max_notification_id() or 0):
                return False  # the cheap check of every idle poll: two indexed reads
            if not postgres:  # read before the transaction: SQLite's pool may have one
                batch = self._decoded(last)
        try:
            with self.tables.transaction() as cursor:
                if postgres:
                    if not self._locked(cursor):
                        return False  # another process's follower works: decode nothing
                    if self.position.read_in(cursor) != last:
                        # Another follower applied from ``last`` before this one took the
                        # lock: this batch would only fail on the rows already there.
                        return False
                    if batch is None:
                        # Decoded under the lock, so that followers never decode the same
                        # batch twice; on a loaded machine that can take longer than the
                        # 5 s PostgreSQL gives a session idle in a transaction
                        # (eventsourcing's setting), which once failed the batch.
                        cursor.execute(f"SET LOCAL idle_in_transaction_session_timeout = {IDLE_MS}")
                        batch = self._decoded(last)
                if not batch:
                    return False
                # Decode the next batch while this one is written (the wait for the
                # database releases the GIL): catch-up runs at the pace of the slower.
                self._read_ahead(batch[-1].position)
                failing = self._apply(cursor, batch)
                # Compare-and-set: refused if another follower applied from ``last``.
                self.position.move(cursor, last, batch[-1].position)
        except (PositionMoved, IntegrityError, OperationalError):
            return False  # another process applied these meanwhile (SQLite): read again
        if failing and self.on_failing is not None:
            try:  # committed: only the follower that applied the batch tells of it
                self.on_failing(failing)
            except Exception:  # noqa: BLE001 - the batch is applied; told again next failure
                log.exception("catalog follower: the failing-endpoint check failed")
        return True

    def _locked(self, cursor: SqlCursor) -> bool:
        """Take the followers' lock for this transaction, if no other follower holds it."""
        row = cursor.execute(
            "SELECT pg_try_advisory_xact_lock(:key) AS locked", {"key": FOLLOWER_LOCK}
        ).fetchone()
        return bool(row["locked"])

    def _decoded(self, last: int) -> list[Decoded]:
        """The batch after position ``last``, decoded (read through the event store's
        recorder, not the follower's transaction: SQLite's pool may have one connection
        only, so there it is read before that transaction begins)."""
        notifications = self.app.recorder.select_notifications(
            start=last + 1, limit=self.batch_size
        )
        decode = sealed_decoder(self.app)
        decoded = []
        for notification in notifications:
            event = self._take_handed(notification) if self._handed else None
            if event is None:
                event = decode(notification)
            decoded.append(Decoded.of(notification.id, event))
        return decoded

    def _read_ahead(self, last: int) -> None:
        try:
            self._ahead = (last, self._reader.submit(self._decoded, last))
        except RuntimeError:  # closed: nothing more to read
            self._ahead = None

    def _read_ahead_from(self, last: int) -> list[Decoded] | None:
        """The batch read ahead, if it starts where the position is (else None)."""
        ahead, self._ahead = self._ahead, None
        if ahead is None or ahead[0] != last:
            return None
        try:
            return ahead[1].result() or None  # empty: it was read before newer writes
        except Exception:  # noqa: BLE001 - read it again, in this thread
            return None

    def _apply(self, cursor: SqlCursor, batch: list[Decoded]) -> list[FailureStreak]:
        """Write the batch's rows; return the failure streaks it grew."""
        orgs = self._orgs_of(cursor, {e.aggregate_id for e in batch if e.version > 1})
        created: dict[str, list[Any]] = {}  # aggregate id → catalog row, in CATALOG_COLUMNS
        changed: dict[str, dict[str, Any]] = {}  # aggregate id → new status / parent
        audit: list[list[Any]] = []  # rows in AUDIT_COLUMNS
        signals: list[Signal] = []
        for e in batch:
            aggregate_id = e.aggregate_id
            org_id = orgs.get(aggregate_id)
            if e.version == 1 or org_id is None:
                org_id = e.org_id
                orgs[aggregate_id] = org_id
                row = [aggregate_id, org_id, e.aggregate_type, e.position, e.parent_id, e.status]
                created[aggregate_id] = row
            elif aggregate_id in created:  # created in this batch: change the row to insert
                row = created[aggregate_id]
                row[4] = e.parent_id or row[4]
                row[5] = e.status or row[5]
            elif e.status is not None or e.parent_id is not None:
                change = changed.setdefault(aggregate_id, {"id": aggregate_id})
                change["status"] = e.status or change.get("status")
                change["parent"] = e.parent_id or change.get("parent")
            audit.append([e.position, org_id, aggregate_id, e.type_name, e.item])
            if e.signal is not None:
                signals.append(Signal(org_id, e.signal, e.at, e.duration_ms))
        # The hash chain, per organization in position order, in this transaction: the
        # batch extends each organization's head as the batch before it left it.
        heads = self._heads_of(cursor, {item[1] for item in audit})  # org → (position, hash)
        for item in audit:
            digest, item[4] = link(item[4], heads.get(item[1], (0, GENESIS))[1])
            heads[item[1]] = (item[0], digest)
        cursor.insert_rows("tenzo_catalog", CATALOG_COLUMNS, [tuple(r) for r in created.values()])
        cursor.executemany(
            "UPDATE tenzo_catalog SET status = COALESCE(:status, status), "
            "parent_id = COALESCE(:parent, parent_id) WHERE aggregate_id = :id",
            list(changed.values()),
        )
        cursor.insert_rows("tenzo_audit", AUDIT_COLUMNS, [tuple(item) for item in audit])
        write_heads(cursor, heads)
        if self.health is None:
            return []
        return self.health.apply(cursor, signals)

    def _heads_of(self, cursor: SqlCursor, org_ids: set[str]) -> dict[str, tuple[int, str]]:
        """The last (position, hash) of each organization's chain, as committed."""
        rows = select_where_in(
            lambda sql, params: cursor.execute(sql, params).fetchall(),
            self.tables.dialect,
            "SELECT org_id, position, hash FROM tenzo_audit_heads WHERE {match}",
            "org_id",
            sorted(org_ids),
        )
        return {row["org_id"]: (int(row["position"]), row["hash"]) for row in rows}

    def _orgs_of(self, cursor: SqlCursor, aggregate_ids: set[str]) -> dict[str, str]:
        """The organization of each aggregate already in the catalog (one query on
        PostgreSQL, one per ``IN_LIST_CHUNK`` ids on SQLite)."""
        rows = select_where_in(
            lambda sql, params: cursor.execute(sql, params).fetchall(),
            self.tables.dialect,
            "SELECT aggregate_id, org_id FROM tenzo_catalog WHERE {match}",
            "aggregate_id",
            sorted(aggregate_ids),
        )
        return {row["aggregate_id"]: row["org_id"] for row in rows}
