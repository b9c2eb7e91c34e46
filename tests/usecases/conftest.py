"""The use cases of DeveloperTools, called directly, on each event store.

Every test here runs in memory (the default: milliseconds), and on an SQLite file and
PostgreSQL like the integration tests (``pytest -m "not postgres"`` leaves PostgreSQL
out; ``pytest -k memory`` keeps only the fast runs). ``org`` and ``other_org`` are the
suite's (tests/conftest.py), made on this folder's ``application``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from domain.application import DeveloperTools
from tests.support.applications import application_on, in_memory_application


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def application(
    request: pytest.FixtureRequest, tmp_path: Any, encryption_key: str
) -> Iterator[DeveloperTools]:
    if request.param == "memory":
        app = in_memory_application(encryption_key=encryption_key)
    elif request.param == "sqlite":
        app = application_on(f"sqlite:///{tmp_path}/events.sqlite3", encryption_key=encryption_key)
    else:
        app = application_on(request.getfixturevalue("postgres_url"), encryption_key=encryption_key)
    try:
        yield app
    finally:
        app.close()
