"""Processes of a new deployment start together on a fresh PostgreSQL database."""

from __future__ import annotations

import base64
import multiprocessing
import os
from typing import Any

import psycopg
import pytest

PROCESSES = 6


def _start(database_url: str, key: str, barrier: Any) -> None:
    from services.bootstrap import build_application
    from services.settings import Settings

    settings = Settings.from_env({"TENZO_DATABASE_URL": database_url, "TENZO_ENCRYPTION_KEY": key})
    barrier.wait(timeout=60)
    build_application(settings).close()


@pytest.mark.postgres
def test_processes_starting_at_once_all_create_the_schema(postgres_url: str) -> None:
    """The API, the relay and dispatchers started at the same moment each create the
    tables they need (CREATE TABLE IF NOT EXISTS at once can fail in PostgreSQL)."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    key = base64.b64encode(os.urandom(32)).decode()
    processes = [
        context.Process(target=_start, args=(postgres_url, key, barrier)) for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [process.exitcode for process in processes] == [0] * PROCESSES
    with psycopg.connect(postgres_url) as db:
        tables = {row[0] for row in db.execute("SELECT tablename FROM pg_tables")}
    assert {"developertools_events", "tenzo_catalog", "tenzo_audit"} <= tables
