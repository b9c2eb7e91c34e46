"""Statements prepared on a pooled PostgreSQL connection outlive a read-only transaction."""

from __future__ import annotations

import pytest

from services.infrastructure.storage import SqlTables

pytestmark = pytest.mark.postgres


@pytest.fixture
def database_url(postgres_url):
    return postgres_url  # conftest's application, on PostgreSQL only


def prepared_on(connection):
    rows = connection.execute("SELECT statement FROM pg_prepared_statements").fetchall()
    return [row["statement"] for row in rows]


def test_a_read_only_transaction_keeps_what_its_connection_prepared(application):
    tables = SqlTables(application, [])
    with tables.transaction(commit=False) as cursor:
        connection = cursor.raw.connection
        connection.execute("SELECT 6 * 7 AS answer", prepare=True)
        assert cursor.execute("SELECT 1 AS one").fetchone()["one"] == 1
    # A ROLLBACK made psycopg send DEALLOCATE ALL: nothing prepared would be left.
    assert "SELECT 6 * 7 AS answer" in prepared_on(connection)


def test_a_failed_read_only_transaction_is_still_rolled_back(application):
    tables = SqlTables(application, ["CREATE TABLE IF NOT EXISTS t_read_only (n INT)"])
    with pytest.raises(RuntimeError), tables.transaction(commit=False) as cursor:
        cursor.execute("INSERT INTO t_read_only (n) VALUES (1)")
        raise RuntimeError("the reader failed")
    assert tables.read("SELECT count(*) AS n FROM t_read_only")[0]["n"] == 0
