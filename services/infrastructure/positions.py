"""Positions in the event store's notification log, kept by the readers that follow it.

Three readers (and the projection's rebuild) keep one, each in the table existing
deployments already have (kept as it is, so no position is lost and nothing is relayed
again from 0):

- the catalog (services/infrastructure/catalog.py): ``tenzo_positions``, row ``catalog``;
- the relay (services/relay/relay.py): ``tenzo_relay_position``, a row per relay name;
- the dispatcher's projection (services/dispatcher/projection.py):
  ``tenzo_dispatch_position``, row ``dispatcher``; and its rebuild
  (services/dispatcher/rebuild.py), row ``dispatcher-rebuild`` (0 when none is under way).

Each table is ``(name TEXT PRIMARY KEY, position BIGINT)``: the shape of
eventsourcing's single-row tracking table, under our names. Why this module rather
than the library's ``TrackingRecorder`` (``insert_tracking``, ``max_tracking_id``) or
its ``ProjectionRunner``:

- **One transaction with our own rows.** The catalog writes its index rows and its
  position in one SQL transaction on SQLite and PostgreSQL (a position and the rows it
  stands for never disagree), through ``SqlTables`` (services/infrastructure/storage.py).
  A ``TrackingRecorder`` writes tracking in a transaction of its own, or together with
  events of a ``ProcessRecorder``, not with rows of another table.
- **Compare-and-set, not only "forward".** The relay saves its position only after
  the broker has confirmed the batch, and only if it is still the one it started from
  (``move``): a second relay that moved it meanwhile makes the first read it again.
  ``insert_tracking`` refuses only a position that is not higher.
- **Positions written without an event.** The projection is fed by the broker, not by
  a ``ProjectionRunner`` following the log: its position is the highest one seen,
  written in batches (``advance``), and set back by a rebuild (``set``).
- **Existing data.** The library's tracking table has other column names; using it
  would need a migration of every deployment's rows for no change in behaviour.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.application import Application

from services.infrastructure.storage import SqlCursor, SqlTables

CATALOG_TABLE = "tenzo_positions"
RELAY_TABLE = "tenzo_relay_position"
DISPATCH_TABLE = "tenzo_dispatch_position"
TABLES = frozenset({CATALOG_TABLE, RELAY_TABLE, DISPATCH_TABLE})


class PositionMoved(Exception):
    """Another process saved a different position meanwhile; read it again."""


class Position:
    """One reader's position (row ``name`` of ``table``), created at 0 if absent.

    The writing methods take the cursor of a transaction of the caller's, so that the
    position is saved with whatever the caller writes beside it.
    """

    def __init__(self, app: Application[Any], table: str, name: str):
        if table not in TABLES:
            raise ValueError(f"not a position table: {table}")
        self.table, self.name = table, name
        self._select = f"SELECT position FROM {table} WHERE name = :name"  # noqa: S608
        self.tables = SqlTables(
            app,
            [
                f"""CREATE TABLE IF NOT EXISTS {table} (
                    name TEXT PRIMARY KEY,
                    position BIGINT NOT NULL
                )"""
            ],
        )
        with self.tables.transaction() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (name, position) VALUES (:name, 0) "  # noqa: S608 - a known table
                "ON CONFLICT (name) DO NOTHING",
                {"name": name},
            )

    def transaction(self) -> Any:
        """A transaction on the event store's database (a context manager: a cursor)."""
        return self.tables.transaction()

    def read(self) -> int:
        """The saved position (0 before anything was saved): one prepared statement on
        PostgreSQL (the relay and every catalog follower read it on each poll)."""
        rows = self.tables.read(self._select, {"name": self.name})
        return int(rows[0]["position"]) if rows else 0

    def read_in(self, cursor: SqlCursor) -> int:
        """The saved position, read in a transaction of the caller's."""
        row = cursor.execute(self._select, {"name": self.name}).fetchone()
        return int(row["position"]) if row else 0

    def move(self, cursor: SqlCursor, old: int, new: int) -> None:
        """Save ``new`` if the position is still ``old``; raise PositionMoved otherwise."""
        moved = cursor.execute(
            f"UPDATE {self.table} SET position = :new "  # noqa: S608
            "WHERE name = :name AND position = :old",
            {"name": self.name, "old": old, "new": new},
        ).rowcount
        if moved != 1:
            raise PositionMoved(f"{self.table}: {self.name}")

    def advance(self, cursor: SqlCursor, position: int) -> None:
        """Save ``position`` if it is higher than the saved one (never moves back)."""
        cursor.execute(
            f"UPDATE {self.table} SET position = :position "  # noqa: S608
            "WHERE name = :name AND position < :position",
            {"name": self.name, "position": position},
        )

    def set(self, cursor: SqlCursor, position: int) -> None:
        """Save ``position`` whatever the saved one is (a rebuild)."""
        cursor.execute(
            f"UPDATE {self.table} SET position = :position WHERE name = :name",  # noqa: S608
            {"name": self.name, "position": position},
        )
