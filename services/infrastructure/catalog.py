"""The catalog: per-organization indexes of aggregates and of the audit history.

A projection of the event store's notification log into two tables, kept up by a
background follower (services/infrastructure/catalog_follower.py) with its position in
``tenzo_positions`` (services/infrastructure/positions.py). Readers never apply events.

Read-your-writes, per organization: every save records the organization's newest
position in ``tenzo_org_writes`` (``note_writes``) before the write returns to its
client; a read for an organization waits (``wait_for_writes``) only until the catalog
has passed that mark — never for the backlog of other organizations' newer events —
and raises CatalogBehind when the bound passes (never stale data silently).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import Application

from contracts.audit import with_personal_data
from contracts.audit_chain import GENESIS, link, unlinked
from domain.endpoint_health import EndpointHealth
from domain.errors import CatalogBehind
from services.infrastructure.catalog_follower import FOLLOWER_LOCK, CatalogFollower, write_heads
from services.infrastructure.personal_data import PersonalDataKeys
from services.infrastructure.positions import CATALOG_TABLE, Position
from services.infrastructure.storage import SqlTables, events_table
from services.infrastructure.webhook_health import CREATE_TABLES as HEALTH_TABLES
from services.infrastructure.webhook_health import OnFailing, WebhookHealth

log = logging.getLogger(__name__)

TRACKING_NAME = "catalog"
DEFAULT_WAIT_SECONDS = 5.0

CREATE_TABLES = [
    """CREATE TABLE IF NOT EXISTS tenzo_catalog (
        aggregate_id TEXT PRIMARY KEY,
        org_id TEXT NOT NULL,
        aggregate_type TEXT NOT NULL,
        position BIGINT NOT NULL,
        parent_id TEXT,
        status TEXT
    )""",
    """CREATE INDEX IF NOT EXISTS tenzo_catalog_by_org
        ON tenzo_catalog (org_id, aggregate_type, position)""",
    # Filtered lists: candidates of a job, deliveries of a status, newest first.
    """CREATE INDEX IF NOT EXISTS tenzo_catalog_by_parent
        ON tenzo_catalog (org_id, aggregate_type, parent_id, position)""",
    """CREATE INDEX IF NOT EXISTS tenzo_catalog_by_status
        ON tenzo_catalog (org_id, aggregate_type, status, position)""",
    """CREATE TABLE IF NOT EXISTS tenzo_audit (
        position BIGINT PRIMARY KEY,
        org_id TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        type TEXT NOT NULL,
        item TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS tenzo_audit_by_org ON tenzo_audit (org_id, position)",
    # Filtered history: by event type, by aggregate.
    "CREATE INDEX IF NOT EXISTS tenzo_audit_by_type ON tenzo_audit (org_id, type, position)",
    """CREATE INDEX IF NOT EXISTS tenzo_audit_by_aggregate
        ON tenzo_audit (org_id, aggregate_id, position)""",
    # The last item of each organization's hash chain (contracts/audit_chain.py).
    """CREATE TABLE IF NOT EXISTS tenzo_audit_heads (
        org_id TEXT PRIMARY KEY,
        position BIGINT NOT NULL,
        hash TEXT NOT NULL
    )""",
    # Each organization's newest write: what its reads wait for.
    """CREATE TABLE IF NOT EXISTS tenzo_org_writes (
        org_id TEXT PRIMARY KEY,
        position BIGINT NOT NULL
    )""",
]

ORG_WRITE_COLUMNS = ("org_id", "position")
# A mark only moves forward: a slower save's older position never lowers it.
NEWER_WRITE = """ON CONFLICT (org_id) DO UPDATE SET position = excluded.position
WHERE tenzo_org_writes.position < excluded.position"""

# A backlog this small (about one batch of the follower's) is waited for whole.
NEARLY_CAUGHT_UP = 1000

MARK_POSITION_AND_NEWEST = """
SELECT (SELECT position FROM tenzo_org_writes WHERE org_id = :org) AS mark,
       (SELECT position FROM tenzo_positions WHERE name = :name) AS done,
       (SELECT MAX({notification_id}) FROM {events}) AS newest
"""


class Catalog:
    """Implements domain.ports.Catalog on SQLite or PostgreSQL."""

    def __init__(
        self,
        app: Application[Any],
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
        on_failing: OnFailing | None = None,
        personal_data: PersonalDataKeys | None = None,
    ):
        """``on_failing`` is told of the failure streaks each batch grew (auto-disable);
        ``personal_data`` opens the sealed personal fields of history items as they are
        read (None: they read "[erased]")."""
        self.app = app
        self.personal_data = personal_data
        self.wait_seconds = wait_seconds
        self.tables = SqlTables(app, CREATE_TABLES + HEALTH_TABLES)
        self.health = WebhookHealth(self.tables)
        self.lag_query = MARK_POSITION_AND_NEWEST.format(
            events=events_table(app),
            # eventsourcing's SQLite table numbers its notifications by rowid.
            notification_id="notification_id" if self.tables.dialect == "postgres" else "rowid",
        )
        self.position = Position(app, CATALOG_TABLE, TRACKING_NAME)
        self.follower = CatalogFollower(
            app, self.tables, self.position, health=self.health, on_failing=on_failing
        )
        self._link_unchained()

    def _link_unchained(self) -> None:
        """A catalog made before the hash chain (its items have none, and there are no
        heads): link its items once, in position order, before following on. Costs one
        cheap query on every later start (which takes no lock)."""
        unchained = (
            "SELECT 1 AS one FROM tenzo_audit WHERE NOT EXISTS "
            "(SELECT 1 FROM tenzo_audit_heads) LIMIT 1"
        )
        if not self.tables.read(unchained):
            return
        with self.tables.transaction() as cursor:
            if self.tables.dialect == "postgres":  # no follower applies a batch meanwhile
                cursor.execute("SELECT pg_advisory_xact_lock(:key)", {"key": FOLLOWER_LOCK})
            if cursor.execute("SELECT 1 AS one FROM tenzo_audit_heads LIMIT 1").fetchone():
                return
            rows = cursor.execute(
                "SELECT position, org_id, item FROM tenzo_audit ORDER BY position"
            ).fetchall()
            heads: dict[str, tuple[int, str]] = {}
            linked = []
            for row in rows:
                item = json.loads(row["item"])
                item.pop("hash", None)
                item.pop("previous_hash", None)
                digest, text = link(unlinked(item), heads.get(row["org_id"], (0, GENESIS))[1])
                heads[row["org_id"]] = (int(row["position"]), digest)
                linked.append({"item": text, "position": row["position"]})
            cursor.executemany(
                "UPDATE tenzo_audit SET item = :item WHERE position = :position", linked
            )
            write_heads(cursor, heads)
        if rows:
            log.info("catalog: linked the hash chain of %d earlier history items", len(rows))

    # -- read-your-writes -----------------------------------------------------------------

    def note_writes(self, marks: Mapping[UUID, int]) -> None:
        """Record each organization's newest written position (before the write returns
        to its client), and wake this process's follower.

        The write is committed already: a failure here is logged, not raised (the
        organization's next read waits less, it does not answer a saved write 500).
        """
        # One order in every process, so concurrent notes cannot deadlock; one statement
        # (one round trip on PostgreSQL) for any number of organizations.
        notes = sorted((str(org_id), position) for org_id, position in marks.items())
        try:
            self.tables.upsert_rows("tenzo_org_writes", ORG_WRITE_COLUMNS, notes, NEWER_WRITE)
        except Exception:  # noqa: BLE001 - the events are saved; reads only wait less
            log.exception("noting writes of %d organizations for the catalog failed", len(notes))
        self.follower.start()
        self.follower.wake()

    def wait_for_writes(self, org_id: UUID) -> None:
        """Return once the catalog holds every write of the organization recorded so far
        (its mark), or the whole log where the catalog is within ``NEARLY_CAUGHT_UP``
        events of it; raise CatalogBehind if that takes longer than ``wait_seconds``."""
        self.follower.start()
        deadline = time.monotonic() + self.wait_seconds
        mark, done, newest = self.lag(org_id)
        if newest - done <= NEARLY_CAUGHT_UP:
            # A catalog this close to the log waits for all of it: a write another
            # process committed a moment ago (the dispatcher's, say) is seen even before
            # that process has noted its mark. A larger backlog is other organizations'
            # to wait for, not this one's: the mark alone counts then.
            mark = max(mark, newest)
        while True:
            if done >= mark:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CatalogBehind(
                    f"The index of this organization's data is {mark - done} events behind "
                    f"its newest write; try again in a moment."
                )
            self.follower.wake()
            self.follower.wait_for_progress(min(remaining, 0.05))
            noted, done, _ = self.lag(org_id)
            mark = max(mark, noted)

    def lag(self, org_id: UUID) -> tuple[int, int, int]:
        """(the organization's newest written position, the catalog's position, the
        log's newest position), in one query."""
        row = self.tables.read(self.lag_query, {"org": str(org_id), "name": TRACKING_NAME})[0]
        return int(row["mark"] or 0), int(row["done"] or 0), int(row["newest"] or 0)

    def close(self) -> None:
        """Stop this process's follower."""
        self.follower.close()

    # -- queries ------------------------------------------------------------------------

    def organization_ids(self) -> list[UUID]:
        """Every organization's id, oldest first (an operator's listing): waits, as an
        organization's read does, for a catalog that is nearly caught up with the log."""
        self.wait_for_writes(UUID(int=0))  # no organization's mark: the log's newest
        rows = self.tables.read(
            "SELECT aggregate_id FROM tenzo_catalog WHERE aggregate_type = :type "
            "ORDER BY position ASC",
            {"type": "Organization"},
        )
        return [UUID(row["aggregate_id"]) for row in rows]

    def aggregate_ids(
        self,
        org_id: UUID,
        aggregate_type: str,
        *,
        limit: int,
        before: int | None = None,
        after: int | None = None,
        parent_id: UUID | None = None,
        status: str | None = None,
    ) -> list[tuple[int, UUID]]:
        sql = (
            "SELECT position, aggregate_id FROM tenzo_catalog "
            "WHERE org_id = :org AND aggregate_type = :type"
        )
        params: dict[str, Any] = {"org": str(org_id), "type": aggregate_type, "limit": limit}
        if before is not None:
            sql += " AND position < :before"
            params["before"] = before
        if after is not None:
            sql += " AND position > :after"
            params["after"] = after
        if parent_id is not None:
            sql += " AND parent_id = :parent"
            params["parent"] = str(parent_id)
        if status is not None:
            sql += " AND status = :status"
            params["status"] = status
        sql += f" ORDER BY position {'ASC' if after is not None else 'DESC'} LIMIT :limit"
        rows = self.tables.read(sql, params)
        return [(int(row["position"]), UUID(row["aggregate_id"])) for row in rows]

    def head(self, org_id: UUID) -> tuple[int, str]:
        rows = self.tables.read(
            "SELECT position, hash FROM tenzo_audit_heads WHERE org_id = :org", {"org": str(org_id)}
        )
        return (int(rows[0]["position"]), rows[0]["hash"]) if rows else (0, GENESIS)

    def events(
        self,
        org_id: UUID,
        *,
        after: int,
        limit: int,
        type: str | None = None,
        aggregate_id: UUID | None = None,
        types: Sequence[str] | None = None,
        before: int | None = None,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        sql = "SELECT item FROM tenzo_audit WHERE org_id = :org AND position > :after"
        params: dict[str, Any] = {"org": str(org_id), "after": after, "limit": limit}
        if type is not None:
            sql += " AND type = :type"
            params["type"] = type
        if types is not None:  # a short list of names known to the code, one index range each
            names = {f"t{n}": name for n, name in enumerate(types)} or {"t0": ""}
            sql += f" AND type IN ({', '.join(':' + key for key in names)})"
            params |= names
        if aggregate_id is not None:
            sql += " AND aggregate_id = :aggregate"
            params["aggregate"] = str(aggregate_id)
        if before is not None:
            sql += " AND position < :before"
            params["before"] = before
        sql += f" ORDER BY position {'DESC' if newest_first else 'ASC'} LIMIT :limit"
        items = [json.loads(row["item"]) for row in self.tables.read(sql, params)]
        tokens = [token for item in items for token in (item.get("sealed") or {}).values()]
        if not tokens:
            return items
        # The personal fields, opened as they are read (one query for the page's keys):
        # stored, the history holds only their sealed tokens.
        opened = self.personal_data.open_many(tokens) if self.personal_data else {}
        return [with_personal_data(item, opened) for item in items]

    def webhook_health(self, org_id: UUID, now: datetime) -> EndpointHealth:
        return self.health.read(org_id, now)
