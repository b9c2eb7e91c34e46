"""One holder at a time, across processes, for long work on the event store's database
(a projection's rebuild).

- PostgreSQL: a session advisory lock (``pg_advisory_lock``) on a connection of the
  event store's pool, kept for the work and released after it (or when the session
  ends, should the process die).
- SQLite on a file: an exclusive ``flock`` on a file beside the database
  (``<database>.lock-<key>``), released when the work ends or the process dies.
- SQLite in memory: a lock of this process (nothing else can reach that database).
"""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from services.infrastructure.storage import SqlTables

_in_memory: dict[tuple[str, int], threading.Lock] = {}
_in_memory_guard = threading.Lock()


@contextmanager
def exclusively(tables: SqlTables, key: int, wait: bool) -> Iterator[bool]:
    """Hold lock ``key`` for the block and yield True; if another holder has it, wait
    for it (``wait``) or yield False at once without holding it."""
    if tables.dialect == "postgres":
        with _on_postgres(tables.datastore, key, wait) as held:
            yield held
        return
    pool: Any = tables.datastore.pool
    if pool.is_sqlite_memory_mode:
        with _in_this_process(str(pool.db_name), key, wait) as held:
            yield held
        return
    with _on_a_file(f"{pool.db_name}.lock-{key}", wait) as held:
        yield held


@contextmanager
def _on_postgres(datastore: Any, key: int, wait: bool) -> Iterator[bool]:
    with datastore.get_connection() as connection:  # autocommit: a session lock
        if wait:
            connection.execute("SELECT pg_advisory_lock(%s)", (key,))
        else:
            row = connection.execute("SELECT pg_try_advisory_lock(%s) AS held", (key,)).fetchone()
            if not row["held"]:
                yield False
                return
        try:
            yield True
        finally:
            connection.execute("SELECT pg_advisory_unlock(%s)", (key,))


@contextmanager
def _in_this_process(database: str, key: int, wait: bool) -> Iterator[bool]:
    with _in_memory_guard:
        lock = _in_memory.setdefault((database, key), threading.Lock())
    if not lock.acquire(blocking=wait):
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


@contextmanager
def _on_a_file(path: str, wait: bool) -> Iterator[bool]:
    with open(path, "a") as lock_file:  # noqa: PTH123 - flock wants the file object
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
