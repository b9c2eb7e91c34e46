"""WSGI entry point for gunicorn: ``gunicorn 'services.api.wsgi:create()'``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask

from services.api.app import create_app
from services.settings import Settings

# Any constant not used by another advisory lock of ours (services/storage.py).
STARTUP_LOCK = 7243191


def create() -> Flask:
    settings = Settings.from_env()
    with one_worker_at_a_time(settings):
        return create_app(settings)


@contextmanager
def one_worker_at_a_time(settings: Settings) -> Iterator[None]:
    """Workers start together, and the event store's CREATE OR REPLACE statements
    collide when run concurrently on PostgreSQL ("tuple concurrently updated"): build
    the app holding a database-wide advisory lock. SQLite serialises DDL itself."""
    if settings.uses_sqlite:
        yield
        return
    import psycopg

    with psycopg.connect(settings.database_url, autocommit=True) as connection:
        connection.execute("SELECT pg_advisory_lock(%s)", (STARTUP_LOCK,))
        yield  # closing the connection releases the lock
