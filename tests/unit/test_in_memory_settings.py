"""``sqlite:///:memory:``: the whole application in this process's memory (tests)."""

from __future__ import annotations

import pytest

from services.settings import IN_MEMORY_DATABASE_URL, Settings


@pytest.fixture(autouse=True)
def in_empty_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # so a file written by mistake would be seen
    yield tmp_path
    assert list(tmp_path.iterdir()) == []


def test_an_in_memory_database_url_needs_no_key_and_writes_no_file():
    settings = Settings.from_env({"TENZO_DATABASE_URL": "sqlite:///:memory:"})

    assert settings.database_url == IN_MEMORY_DATABASE_URL
    assert settings.in_memory and settings.uses_sqlite
    assert len(settings.encryption_key) == 44  # made up: base64 of 32 bytes


def test_each_application_gets_a_shared_cache_database_of_its_own():
    settings = Settings(database_url=IN_MEMORY_DATABASE_URL).with_encryption_key()

    first, second = settings.eventsourcing_env(), settings.eventsourcing_env()

    assert first["PERSISTENCE_MODULE"] == "eventsourcing.sqlite"
    assert first["SQLITE_DBNAME"].startswith("file:tenzo-")
    assert first["SQLITE_DBNAME"].endswith("?mode=memory&cache=shared")
    assert first["SQLITE_DBNAME"] != second["SQLITE_DBNAME"]


def test_a_given_key_is_kept():
    key = "A" * 43 + "="
    assert (
        Settings(database_url=IN_MEMORY_DATABASE_URL, encryption_key=key)
        .with_encryption_key()
        .encryption_key
        == key
    )


@pytest.mark.parametrize("url", ["sqlite:///:memory:x", "sqlite://:memory:", "sqlite:///memory"])
def test_only_the_exact_url_is_in_memory(url):
    assert not Settings(database_url=url).in_memory
