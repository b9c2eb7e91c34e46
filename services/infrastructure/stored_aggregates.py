"""Many aggregates in one query: a page of a list without one repository read per row.

Reads the events of every aggregate of a page from eventsourcing's own stored-events
table in one statement (per ``CHUNK`` ids), decodes them with the application's mapper
(decryption, decompression) and projects each aggregate as the repository does
(``project_aggregate``; the application takes no snapshots).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.application import Application, project_aggregate
from eventsourcing.persistence import StoredEvent

from services.infrastructure.storage import SqlTables

CHUNK = 500  # ids per statement: well under SQLite's bound on parameters


class StoredAggregates:
    """Implements domain.ports.ManyAggregates on the application's event store."""

    def __init__(self, app: Application[Any]):
        self.app = app
        self.tables = SqlTables(app)
        recorder: Any = app.recorder
        if self.tables.dialect == "postgres":
            schema = app.factory.datastore.schema  # type: ignore[attr-defined]
            self.table = f'"{schema}"."{recorder.events_table_name}"'
        else:
            self.table = recorder.events_table_name

    def get_many(self, aggregate_ids: Sequence[UUID]) -> dict[UUID, Any]:
        wanted = list(dict.fromkeys(aggregate_ids))
        events: dict[UUID, list[Any]] = {}
        for first in range(0, len(wanted), CHUNK):
            for row in self._rows(wanted[first : first + CHUNK]):
                stored = StoredEvent(
                    originator_id=UUID(str(row["originator_id"])),
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
                event = self.app.mapper.to_domain_event(stored)
                events.setdefault(event.originator_id, []).append(event)
        return {
            aggregate_id: project_aggregate(None, events[aggregate_id])
            for aggregate_id in wanted
            if aggregate_id in events
        }

    def _rows(self, ids: list[UUID]) -> list[Any]:
        columns = "originator_id, originator_version, topic, state"
        order = "ORDER BY originator_id, originator_version"
        if self.tables.dialect == "postgres":
            sql = f"SELECT {columns} FROM {self.table} WHERE originator_id = ANY(:ids) {order}"  # noqa: S608
            return self.tables.read(sql, {"ids": ids})
        # eventsourcing's SQLite recorder stores ids as 32 hex digits.
        params = {f"i{n}": aggregate_id.hex for n, aggregate_id in enumerate(ids)}
        placeholders = ", ".join(f":{name}" for name in params)
        sql = f"SELECT {columns} FROM {self.table} WHERE originator_id IN ({placeholders}) {order}"  # noqa: S608
        return self.tables.read(sql, params)
