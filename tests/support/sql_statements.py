"""Counting the SQL statements our own tables send to the database driver."""

from __future__ import annotations

from typing import Any

import pytest


def usage_statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every SQL statement on the usage table from now on (``statements_on``)."""
    return statements_on(monkeypatch, "tenzo_api_key_usage")


def statements_on(monkeypatch: pytest.MonkeyPatch, table: str) -> list[str]:
    """Every SQL statement naming ``table`` from now on, as sent to the driver: our
    tables reach the database only through SqlCursor.execute and SqlTables.read."""
    from services.infrastructure.storage import SqlCursor, SqlTables

    seen: list[str] = []

    def counting(send: Any) -> Any:
        def counted(self: Any, sql: str, params: Any = None) -> Any:
            if table in sql:
                seen.append(sql)
            return send(self, sql, params)

        return counted

    monkeypatch.setattr(SqlCursor, "execute", counting(SqlCursor.execute))
    monkeypatch.setattr(SqlTables, "read", counting(SqlTables.read))
    return seen


def statements_of_this_thread(monkeypatch: pytest.MonkeyPatch, application: Any) -> list[str]:
    """Every statement this thread sends from now on: on our own tables (SqlCursor,
    SqlTables) and the event store's reads of one aggregate's events (``select_events``,
    what a repository read runs). Other threads (the catalog's follower, the usage
    flusher) are left out, so the count is the request's own."""
    import threading

    from services.infrastructure.storage import SqlCursor, SqlTables

    seen: list[str] = []
    me = threading.get_ident()

    def counting(send: Any, name: str | None = None) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == me:
                seen.append(name or str(args[1]))
            return send(*args, **kwargs)

        return counted

    monkeypatch.setattr(SqlCursor, "execute", counting(SqlCursor.execute))
    monkeypatch.setattr(SqlTables, "read", counting(SqlTables.read))
    recorder = application.recorder
    monkeypatch.setattr(
        recorder, "select_events", counting(recorder.select_events, "select_events")
    )
    return seen
