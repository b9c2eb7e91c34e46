"""DeveloperTools with its catalog, built by the composition root, for use-case tests.

``in_memory_application()`` runs the whole application in this process's memory, as the
eventsourcing examples run theirs: the event store is eventsourcing's SQLite datastore
on an in-memory database, and the catalog's tables live in the same database (it
reaches them through the event store's datastore), so there is one implementation of
everything, only faster. ``application_on(url)`` builds the same on a file or a server.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from domain.actors import Actor
from domain.application import DeveloperTools
from domain.recruiting import Job
from services.bootstrap import build_application
from services.settings import IN_MEMORY_DATABASE_URL, Settings


def application_on(database_url: str, **settings: Any) -> DeveloperTools:
    """DeveloperTools on this database, as ``build_application`` builds it for a
    process; close it when done. ``settings`` are other Settings fields."""
    settings.setdefault("encryption_key", base64.b64encode(os.urandom(32)).decode())
    return build_application(Settings(database_url=database_url, **settings))


def in_memory_application(**settings: Any) -> DeveloperTools:
    """DeveloperTools on a database of its own in memory, gone when it is closed."""
    return application_on(IN_MEMORY_DATABASE_URL, **settings)


def position(application: DeveloperTools) -> int:
    """The position of the newest event in the notification log (0 when empty)."""
    return application.recorder.max_notification_id() or 0


def recorded_since(application: DeveloperTools, after: int) -> list[str]:
    """The events recorded after a position, as ``Aggregate.Event`` names, in order."""
    notifications = application.recorder.select_notifications(start=after + 1, limit=1_000_000)
    return [type(application.mapper.to_domain_event(n)).__qualname__ for n in notifications]


@contextmanager
def records_nothing(application: DeveloperTools) -> Iterator[None]:
    """Asserts that nothing is recorded in the block (e.g. a refused command)."""
    before = position(application)
    yield
    assert recorded_since(application, before) == []


def jobs(org_id: UUID, count: int, by: Actor) -> list[Job]:
    """``count`` new open jobs of the organization, not saved (a backlog written fast,
    many per save: tests/integration/test_catalog_following.py, bench/catalog_*.py)."""
    return [
        Job(
            org_id=org_id,
            external_id=None,
            title=f"Job {n}",
            description=None,
            location=None,
            department=None,
            employment_type=None,
            status="open",
            actor=by,
        )
        for n in range(count)
    ]
