"""Our own tables beside the event store, in the same database, on SQLite or PostgreSQL.

The event store is eventsourcing's; read models, usage counters and idempotency records
live in tables of their own in the same database and reach it through the event store's
datastore (its connection pool and transactions). SQL is written once, with ``:name``
parameters, and adapted to the driver's style here.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

from eventsourcing.application import Application

Dialect = Literal["sqlite", "postgres"]

_NAMED_PARAM = re.compile(r"(?<![:\w]):(\w+)")


def dialect_of(app: Application[Any]) -> Dialect:
    module = type(app.factory).__module__
    return "postgres" if module.endswith("postgres") else "sqlite"


def events_table(app: Application[Any]) -> str:
    """eventsourcing's stored-events table, as our SQL names it (schema-qualified on
    PostgreSQL)."""
    recorder: Any = app.recorder
    if dialect_of(app) == "postgres":
        schema = app.factory.datastore.schema  # type: ignore[attr-defined]
        return f'"{schema}"."{recorder.events_table_name}"'
    return str(recorder.events_table_name)


IN_LIST_CHUNK = 500  # values per IN (...) list on SQLite: well under its bound on parameters


def select_where_in(
    run: Callable[[str, dict[str, Any]], list[Any]],
    dialect: Dialect,
    sql: str,
    column: str,
    values: Sequence[Any],
) -> list[Any]:
    """The rows of ``sql`` (``{match}`` where the condition goes) whose ``column`` is one
    of ``values``; ``run`` executes a statement and returns its rows. PostgreSQL: one
    statement, ``column = ANY(:values)``; SQLite: one ``IN (...)`` list statement per
    ``IN_LIST_CHUNK`` values."""
    if not values:
        return []
    if dialect == "postgres":
        return run(sql.format(match=f"{column} = ANY(:values)"), {"values": list(values)})
    rows: list[Any] = []
    for first in range(0, len(values), IN_LIST_CHUNK):
        params = {f"v{n}": value for n, value in enumerate(values[first : first + IN_LIST_CHUNK])}
        placeholders = ", ".join(f":{name}" for name in params)
        rows.extend(run(sql.format(match=f"{column} IN ({placeholders})"), params))
    return rows


@functools.lru_cache(maxsize=256)
def _pyformat(sql: str) -> str:
    return _NAMED_PARAM.sub(r"%(\1)s", sql)


@functools.lru_cache(maxsize=64)
def _upsert_statement(
    dialect: Dialect, table: str, columns: tuple[str, ...], on_conflict: str
) -> str:
    """The statement of ``SqlCursor.upsert_rows``. On PostgreSQL the rows arrive as one
    JSON array of objects, read back with the table's own column types (its row type):
    the text is the same for any number of rows, and text, bigints and NULLs keep their
    values. Names are ours, not input."""
    names = ", ".join(columns)
    if dialect == "postgres":
        return (
            f"INSERT INTO {table} ({names}) SELECT {names} "  # noqa: S608
            f"FROM jsonb_populate_recordset(NULL::{table}, %s::jsonb) {on_conflict}"
        )
    marks = ", ".join("?" for _ in columns)
    return f"INSERT INTO {table} ({names}) VALUES ({marks}) {on_conflict}"  # noqa: S608


class SqlCursor:
    """A cursor that takes ``:name`` parameters on both drivers; rows are mappings."""

    def __init__(self, raw: Any, dialect: Dialect):
        # eventsourcing wraps sqlite3's cursor; use the driver's own on both.
        self.raw = getattr(raw, "sqlite_cursor", raw)
        self.dialect = dialect

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> SqlCursor:
        if self.dialect == "postgres":
            self.raw.execute(_pyformat(sql), params or {}, prepare=False)
        else:
            self.raw.execute(sql, params or {})
        return self

    def executemany(self, sql: str, seq_of_params: list[dict[str, Any]]) -> SqlCursor:
        """One statement for many parameter sets (psycopg pipelines them: one round trip)."""
        if self.dialect == "postgres":
            self.raw.executemany(_pyformat(sql), seq_of_params)
        else:
            self.raw.executemany(sql, seq_of_params)
        return self

    def fetchone(self) -> Any:
        return self.raw.fetchone()

    def fetchall(self) -> list[Any]:
        return list(self.raw.fetchall())

    def insert_rows(
        self, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
    ) -> None:
        """Insert many rows at once: COPY on PostgreSQL, executemany on SQLite."""
        if not rows:
            return
        names = ", ".join(columns)
        if self.dialect == "postgres":
            with self.raw.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" for _ in columns)
            self.raw.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)  # noqa: S608

    def upsert_rows(
        self,
        table: str,
        columns: tuple[str, ...],
        rows: Sequence[tuple[Any, ...]],
        on_conflict: str,
    ) -> None:
        """Insert rows (values in ``columns`` order), doing ``on_conflict`` (an ``ON
        CONFLICT (key) DO ...`` clause, the new row named ``excluded``) where a key is
        present: one statement for all the rows on PostgreSQL, executemany on SQLite.

        The caller gives each key at most once (PostgreSQL refuses to change a row twice
        in one statement) and sorts the rows by key, so that concurrent writers lock
        rows in one order and cannot deadlock. Values are text, integers or None
        (timestamps as ISO text, as our tables store them)."""
        if not rows:
            return
        sql = _upsert_statement(self.dialect, table, columns, on_conflict)
        if self.dialect == "postgres":
            payload = json.dumps([dict(zip(columns, row, strict=True)) for row in rows])
            self.raw.execute(sql, (payload,), prepare=True)  # the same text for any batch
        else:
            self.raw.executemany(sql, rows)

    @property
    def rowcount(self) -> int:
        rowcount: int = self.raw.rowcount
        return rowcount


class SqlTables:
    """Access to our own tables through an application's event-store datastore."""

    def __init__(self, app: Application[Any], create_statements: list[str] = ()):  # type: ignore[assignment]
        self.dialect = dialect_of(app)
        self.datastore: Any = app.factory.datastore  # type: ignore[attr-defined]
        for statement in create_statements:
            with self.transaction() as cursor:
                if self.dialect == "postgres":
                    # Concurrent CREATE ... IF NOT EXISTS can still collide in PostgreSQL's
                    # catalog (e.g. gunicorn workers starting together): serialise them.
                    cursor.execute("SELECT pg_advisory_xact_lock(7243190)")
                cursor.execute(statement)

    def add_columns(self, table: str, columns: dict[str, str]) -> None:
        """Add the columns (name: SQL type) a table made by an earlier version lacks;
        idempotent, also when processes start together. Names are ours, not input."""
        with self.transaction() as cursor:
            if self.dialect == "postgres":
                cursor.execute("SELECT pg_advisory_xact_lock(7243190)")
                for name, sql_type in columns.items():
                    cursor.execute(
                        f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {name} {sql_type}"
                    )
                return
            # SQLite has no IF NOT EXISTS here: look first; a process that added the
            # column meanwhile makes ours a duplicate, which is what was wanted.
            present = {row[1] for row in cursor.execute(f"PRAGMA table_info({table})").fetchall()}
            for name, sql_type in columns.items():
                if name in present:
                    continue
                try:
                    cursor.execute(f"ALTER TABLE {table} ADD COLUMN {name} {sql_type}")
                except Exception as error:
                    if "duplicate column" not in str(error):
                        raise

    @contextmanager
    def transaction(self, commit: bool = True) -> Iterator[SqlCursor]:
        """A transaction; ``commit=False`` for one that only reads. On PostgreSQL that
        one ends with COMMIT as well (it wrote nothing; an error still rolls it back):
        at a ROLLBACK psycopg forgets every statement it prepared on the connection and
        sends DEALLOCATE ALL, and the hot statements on it are parsed and planned again."""
        ends_with_commit = commit or self.dialect == "postgres"
        with self.datastore.transaction(commit=ends_with_commit) as raw:
            cursor = SqlCursor(raw, self.dialect)
            if self.dialect == "sqlite":
                # Deleted or overwritten rows are zeroed in the file, not left in free
                # space: an erased candidate's data must not outlive its erasure.
                cursor.execute("PRAGMA secure_delete = ON")
            yield cursor

    def scrub(self) -> None:
        """Make rows deleted or overwritten so far unreadable in the database's files:
        on SQLite, checkpoint the write-ahead log into the (securely deleted) database
        file and truncate it. On PostgreSQL nothing here: old row versions stay in the
        table files until VACUUM (docs/audit.md)."""
        if self.dialect == "sqlite":
            with self.datastore.get_connection(commit=True) as connection:  # the writer
                connection._sqlite_conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def read(self, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
        """Rows of one read-only statement. On PostgreSQL it runs on an autocommit
        connection as a prepared statement: one round trip instead of a transaction's
        three (for hot reads such as the dispatcher's)."""
        if self.dialect != "postgres":
            with self.transaction(commit=False) as cursor:
                return cursor.execute(sql, params).fetchall()
        with self.datastore.get_connection() as connection:
            return list(connection.execute(_pyformat(sql), params or {}, prepare=True).fetchall())

    def write(self, sql: str, params: dict[str, Any] | None = None) -> None:
        """One statement in a transaction of its own. On PostgreSQL it runs on an
        autocommit connection as a prepared statement: one round trip (for a write on
        every save, such as the catalog's marks)."""
        if self.dialect != "postgres":
            with self.transaction() as cursor:
                cursor.execute(sql, params)
            return
        with self.datastore.get_connection() as connection:
            connection.execute(_pyformat(sql), params or {}, prepare=True)

    def upsert_rows(
        self,
        table: str,
        columns: tuple[str, ...],
        rows: Sequence[tuple[Any, ...]],
        on_conflict: str,
    ) -> None:
        """``SqlCursor.upsert_rows`` in a transaction of its own. On PostgreSQL it runs
        on an autocommit connection: one round trip for any number of rows (for a write
        on every save, such as the catalog's marks)."""
        if not rows:
            return
        if self.dialect != "postgres":
            with self.transaction() as cursor:
                cursor.upsert_rows(table, columns, rows, on_conflict)
            return
        with self.datastore.get_connection() as connection:
            SqlCursor(connection.cursor(), self.dialect).upsert_rows(
                table, columns, rows, on_conflict
            )
