"""Counting the SQL statements our own tables send to the database driver."""

from __future__ import annotations

from typing import Any

import pytest


def usage_statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every SQL statement on the usage table from now on, as sent to the driver: our
    tables reach the database only through SqlCursor.execute and SqlTables.read."""
    from services.infrastructure.storage import SqlCursor, SqlTables

    seen: list[str] = []
    execute, read = SqlCursor.execute, SqlTables.read

    def counting_execute(self: Any, sql: str, params: Any = None) -> Any:
        if "tenzo_api_key_usage" in sql:
            seen.append(sql)
        return execute(self, sql, params)

    def counting_read(self: Any, sql: str, params: Any = None) -> Any:
        if "tenzo_api_key_usage" in sql:
            seen.append(sql)
        return read(self, sql, params)

    monkeypatch.setattr(SqlCursor, "execute", counting_execute)
    monkeypatch.setattr(SqlTables, "read", counting_read)
    return seen
