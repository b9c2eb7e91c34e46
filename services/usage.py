"""API-key usage: counters that are not audit facts, kept beside the event store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import Application

from services.storage import SqlTables

CREATE_TABLES = [
    """CREATE TABLE IF NOT EXISTS tenzo_api_key_usage (
        key_id TEXT PRIMARY KEY,
        usage_count BIGINT NOT NULL,
        last_used_at TEXT
    )""",
]


@dataclass(frozen=True)
class Usage:
    count: int = 0
    last_used_at: datetime | None = None


class UsageCounter:
    """Reads and records how often, and when last, each API key was used."""

    def __init__(self, app: Application[Any]):
        self.tables = SqlTables(app, CREATE_TABLES)

    def read(self, key_id: UUID) -> Usage:
        with self.tables.transaction(commit=False) as cursor:
            row = cursor.execute(
                "SELECT usage_count, last_used_at FROM tenzo_api_key_usage WHERE key_id = :id",
                {"id": str(key_id)},
            ).fetchone()
        if row is None:
            return Usage()
        last = row["last_used_at"]
        return Usage(int(row["usage_count"]), datetime.fromisoformat(last) if last else None)
