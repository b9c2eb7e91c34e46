"""Counting the SQL statements our own tables send to the database driver."""

from __future__ import annotations

from typing import Any

import pytest


def usage_statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every SQL statement on the usage table from now on, as sent to the driver: our
    tables reach the database only through SqlCursor.execute and SqlTables.read."""
    from services.infrastructure.storage import SqlCursor, SqlTables

    seen: list[str] = []

    def counting(send: Any) -> Any:
        def counted(self: Any, sql: str, params: Any = None) -> Any:
            if "tenzo_api_key_usage" in sql:
                seen.append(sql)
            return send(self, sql, params)

        return counted

    monkeypatch.setattr(SqlCursor, "execute", counting(SqlCursor.execute))
    monkeypatch.setattr(SqlTables, "read", counting(SqlTables.read))
    return seen
