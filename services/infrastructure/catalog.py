"""The catalog: per-organization indexes of aggregates and of the audit history.

A projection of the event store's notification log into two tables, with its
position (``tenzo_positions``, services/infrastructure/positions.py) moved from the
position it read in the same transaction, so each event is applied exactly once
whichever process applies it. Reads call ``catch_up()`` first, so every
API process reads its own writes and those of every other process.
"""

from __future__ import annotations

import json
import threading
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError, OperationalError

from contracts.audit import audit_item, event_type_names
from services.infrastructure.positions import CATALOG_TABLE, Position, PositionMoved
from services.infrastructure.storage import SqlCursor, SqlTables

TRACKING_NAME = "catalog"
BATCH_SIZE = 500

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
    """CREATE TABLE IF NOT EXISTS tenzo_audit (
        position BIGINT PRIMARY KEY,
        org_id TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        type TEXT NOT NULL,
        item TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS tenzo_audit_by_org ON tenzo_audit (org_id, position)",
]

# How events set an aggregate's status in the catalog (for filtered lists).
STATUS_BY_EVENT = {
    "DeliveryScheduled": "pending",
    "DeliveryRedeliveryRequested": "pending",
    "DeliverySucceeded": "succeeded",
    "DeliveryFailed": "failed",
}
# Which attribute of a creating event names the aggregate's parent (for filtered lists).
PARENT_ATTRIBUTE = {"Candidate": "job_id"}


class Catalog:
    """Implements domain.ports.Catalog on SQLite or PostgreSQL."""

    def __init__(self, app: Application[Any]):
        self.app = app
        self.tables = SqlTables(app, CREATE_TABLES)
        self.position = Position(app, CATALOG_TABLE, TRACKING_NAME)
        self._lock = threading.Lock()

    # -- projection ---------------------------------------------------------------------

    def catch_up(self) -> None:
        with self._lock:
            for _ in range(100):
                last = self.position.read()
                newest = self.app.recorder.max_notification_id() or 0
                if last >= newest:
                    return
                try:
                    self._apply_batch(last)
                except (PositionMoved, IntegrityError, OperationalError):
                    continue  # another process applied these; read the position again

    def _apply_batch(self, last: int) -> None:
        notifications = self.app.recorder.select_notifications(start=last + 1, limit=BATCH_SIZE)
        if not notifications:
            return
        with self.tables.transaction() as cursor:
            for notification in notifications:
                event = self.app.mapper.to_domain_event(notification)
                self._apply(cursor, event, notification.id)
            self.position.move(cursor, last, notifications[-1].id)

    def _apply(self, cursor: SqlCursor, event: Any, position: int) -> None:
        aggregate_type, type_name = event_type_names(event)
        aggregate_id = str(event.originator_id)
        if event.originator_version == 1:
            org_id = getattr(event, "org_id", None) or event.originator_id
            parent = getattr(event, PARENT_ATTRIBUTE.get(aggregate_type, ""), None)
            cursor.execute(
                "INSERT INTO tenzo_catalog "
                "(aggregate_id, org_id, aggregate_type, position, parent_id, status) "
                "VALUES (:id, :org, :type, :position, :parent, :status)",
                {
                    "id": aggregate_id,
                    "org": str(org_id),
                    "type": aggregate_type,
                    "position": position,
                    "parent": None if parent is None else str(parent),
                    "status": STATUS_BY_EVENT.get(type_name),
                },
            )
        else:
            row = cursor.execute(
                "SELECT org_id FROM tenzo_catalog WHERE aggregate_id = :id", {"id": aggregate_id}
            ).fetchone()
            org_id = row["org_id"]
            if type_name in STATUS_BY_EVENT:
                cursor.execute(
                    "UPDATE tenzo_catalog SET status = :status WHERE aggregate_id = :id",
                    {"status": STATUS_BY_EVENT[type_name], "id": aggregate_id},
                )
            parent = getattr(event, PARENT_ATTRIBUTE.get(aggregate_type, ""), None)
            if parent is not None:  # e.g. a candidate moved to another job
                cursor.execute(
                    "UPDATE tenzo_catalog SET parent_id = :parent WHERE aggregate_id = :id",
                    {"parent": str(parent), "id": aggregate_id},
                )
        cursor.execute(
            "INSERT INTO tenzo_audit (position, org_id, aggregate_id, type, item) "
            "VALUES (:position, :org, :id, :type, :item)",
            {
                "position": position,
                "org": str(org_id),
                "id": aggregate_id,
                "type": type_name,
                "item": json.dumps(audit_item(event, position)),
            },
        )

    # -- queries ------------------------------------------------------------------------

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
        with self.tables.transaction(commit=False) as cursor:
            rows = cursor.execute(sql, params).fetchall()
        return [(int(row["position"]), UUID(row["aggregate_id"])) for row in rows]

    def events(
        self,
        org_id: UUID,
        *,
        after: int,
        limit: int,
        type: str | None = None,
        aggregate_id: UUID | None = None,
    ) -> list[dict[str, Any]]:
        sql = "SELECT item FROM tenzo_audit WHERE org_id = :org AND position > :after"
        params: dict[str, Any] = {"org": str(org_id), "after": after, "limit": limit}
        if type is not None:
            sql += " AND type = :type"
            params["type"] = type
        if aggregate_id is not None:
            sql += " AND aggregate_id = :aggregate"
            params["aggregate"] = str(aggregate_id)
        sql += " ORDER BY position ASC LIMIT :limit"
        with self.tables.transaction(commit=False) as cursor:
            rows = cursor.execute(sql, params).fetchall()
        return [json.loads(row["item"]) for row in rows]
