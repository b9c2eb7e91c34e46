"""A lean "are there newer events?" probe on the event store's own table (PostgreSQL).

Authentication asks it on every Public API request (domain/fast_forward.py), so its
cost is most of what authentication costs. The library's ``select_events`` composes
its SQL on each call, re-checks type adapters and builds row dictionaries: about
160 µs of CPU. This runs one statement, prepared once per connection, straight on
libpq (``exec_prepared`` releases the GIL while it waits), with a connection from the
event store's own pool: about 30 µs. On SQLite the library's query is used as it is.
"""

from __future__ import annotations

import weakref
from typing import Any
from uuid import UUID

import psycopg
from psycopg import pq, sql

from domain.fast_forward import HasNewerEvents
from services.infrastructure.storage import dialect_of

STATEMENT = b"tenzo_has_newer_events"
UNDEFINED_PREPARED_STATEMENT = b"26000"


def has_newer_events_probe(app: Any) -> HasNewerEvents | None:
    """The probe for the application's event store, or None to keep the library's."""
    if dialect_of(app) != "postgres":
        return None
    datastore = app.factory.datastore
    pool = datastore.pool  # opened by the library when it created its tables
    table = sql.Identifier(datastore.schema, app.recorder.events_table_name)
    query = sql.SQL(
        "SELECT 1 FROM {table} WHERE originator_id = $1 AND originator_version > $2 LIMIT 1"
    ).format(table=table)
    prepared: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()

    def has_newer_events(aggregate_id: UUID, version: int) -> bool:
        params = [str(aggregate_id).encode(), str(version).encode()]
        with pool.connection() as connection:
            pgconn = connection.pgconn
            for _ in range(2):
                if connection not in prepared:
                    _check(pgconn.prepare(STATEMENT, query.as_bytes(connection), None))
                    prepared.add(connection)
                result = pgconn.exec_prepared(STATEMENT, params)
                if result.status == pq.ExecStatus.TUPLES_OK:
                    return result.ntuples > 0
                # psycopg issues DEALLOCATE ALL after a ROLLBACK on a connection that has
                # statements of its own: prepare ours again, once.
                if result.error_field(pq.DiagnosticField.SQLSTATE) != UNDEFINED_PREPARED_STATEMENT:
                    _check(result)
                prepared.discard(connection)
        raise psycopg.OperationalError("the newer-events probe could not be prepared")

    return has_newer_events


def _check(result: pq.abc.PGresult) -> None:
    if result.status not in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
        message = (result.error_message or b"").decode("utf-8", "replace").strip()
        raise psycopg.OperationalError(f"newer-events probe: {message}")
