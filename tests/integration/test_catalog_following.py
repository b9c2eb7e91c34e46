"""The catalog's background follower: reads see their own writes after a big backlog,
never wait for another organization's backlog, refuse (503) rather than answer stale,
and several followers apply each event exactly once.

Backlogs are written fast through the application, a thousand jobs per save.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from domain.actors import OPERATOR
from domain.application import DeveloperTools
from domain.errors import CatalogBehind
from services.api.app import create_app
from services.bootstrap import build_api
from services.infrastructure.catalog_follower import FOLLOWER_LOCK, CatalogFollower
from services.settings import Settings
from tests.support.applications import application_on, jobs, position

pytestmark = pytest.mark.timeout(600)


def write_backlog(application: DeveloperTools, org_id: UUID, events: int) -> None:
    for _ in range(events // 1000):
        application.save(*jobs(org_id, 1000, OPERATOR))


def audit_positions(application: DeveloperTools) -> list[int]:
    tables = application.catalog.tables  # type: ignore[attr-defined]
    rows = tables.read("SELECT position FROM tenzo_audit ORDER BY position")
    return [int(row["position"]) for row in rows]


def notification_ids(application: DeveloperTools) -> list[int]:
    notifications = application.recorder.select_notifications(start=1, limit=1_000_000)
    return [notification.id for notification in notifications]


@pytest.fixture
def key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def on_postgres(postgres_url: str, key: str) -> Iterator[tuple[str, DeveloperTools]]:
    application = application_on(postgres_url, encryption_key=key, catalog_wait_seconds=120.0)
    try:
        yield postgres_url, application
    finally:
        application.close()


@pytest.mark.postgres
def test_a_read_after_a_60k_event_backlog_returns_its_own_newest_write(on_postgres):
    _, application = on_postgres
    organization, _ = application.create_organization("Big", OPERATOR)
    write_backlog(application, organization.id, 60_000)
    newest = jobs(organization.id, 1, OPERATOR)[0]
    application.save(newest)

    page, _ = application.list_jobs(organization.id, limit=5)

    assert page[0].id == newest.id
    history = application.event_history(organization.id, after=position(application) - 1)
    assert [item["aggregate_id"] for item in history] == [str(newest.id)]


@pytest.mark.postgres
def test_a_small_organizations_read_does_not_wait_for_a_big_ones_backlog(on_postgres, key):
    url, application = on_postgres
    small, small_token = application.create_organization("Small", OPERATOR)
    big, big_token = application.create_organization("Big", OPERATOR)
    [small_job] = jobs(small.id, 1, OPERATOR)
    application.save(small_job)
    assert [job.id for job in application.list_jobs(small.id)[0]] == [small_job.id]

    # No follower can work while this session holds the followers' lock.
    with psycopg.connect(url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (FOLLOWER_LOCK,))
        write_backlog(application, big.id, 20_000)
        backlog_end = position(application)

        page, _ = application.list_jobs(small.id)
        _, caught_up_to, _ = application.catalog.lag(small.id)  # type: ignore[attr-defined]

        assert [job.id for job in page] == [small_job.id]
        assert caught_up_to < backlog_end  # answered without the big backlog applied

        # The big organization's read, in an API process that waits 0.3 s at most,
        # cannot be answered yet: 503, not stale data.
        settings = Settings(database_url=url, encryption_key=key, catalog_wait_seconds=0.3)
        impatient = application_on(url, encryption_key=key, catalog_wait_seconds=0.3)
        api = build_api(settings, impatient)
        client = create_app(api).test_client()
        response = client.get("/admin/v1/events", headers={"Authorization": f"Bearer {big_token}"})
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert response.content_type == "application/problem+json"
        assert response.json["status"] == 503
        with pytest.raises(CatalogBehind):
            impatient.list_jobs(big.id)
        small_read = client.get(
            "/admin/v1/events", headers={"Authorization": f"Bearer {small_token}"}
        )
        assert small_read.status_code == 200
        api.close()
        impatient.close()
        holder.execute("SELECT pg_advisory_unlock(%s)", (FOLLOWER_LOCK,))

    page, _ = application.list_jobs(big.id, limit=1)
    assert len(page) == 1
    assert application.catalog.lag(big.id)[1] >= backlog_end  # type: ignore[attr-defined]


def test_several_followers_apply_each_event_exactly_once(database_url, key):
    # Patient reads: on a loaded machine four followers over one SQLite file can take
    # longer than the default wait to apply 6,000 events (what is asserted is exactness).
    first = application_on(database_url, encryption_key=key, catalog_wait_seconds=60)
    second = application_on(database_url, encryption_key=key, catalog_wait_seconds=60)
    extra = [
        CatalogFollower(app, app.catalog.tables, app.catalog.position, batch_size=100)  # type: ignore[attr-defined]
        for app in (first, second)
    ]
    try:
        organization, _ = first.create_organization("Acme", OPERATOR)
        writers = [
            threading.Thread(target=write_backlog, args=(app, organization.id, 3000))
            for app in (first, second)
        ]
        for follower in extra:
            follower.start()
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        first.catalog.wait_for_writes(organization.id)
        second.catalog.wait_for_writes(organization.id)
        for follower in extra:
            follower.close()

        assert audit_positions(first) == notification_ids(first)
        assert len(first.list_jobs(organization.id, limit=100)[0]) == 100
    finally:
        for follower in extra:  # before the stores they write to are closed
            follower.close()
        first.close()
        second.close()


def test_close_stops_the_follower_thread(database_url):
    application = application_on(database_url)
    application.create_organization("Acme", OPERATOR)
    follower = application.catalog.follower  # type: ignore[attr-defined]
    assert follower.running

    application.close()

    assert not follower.running


def test_a_read_the_catalog_cannot_answer_in_time_is_refused_not_stale(database_url):
    application = application_on(database_url, catalog_wait_seconds=0.2)
    try:
        organization, _ = application.create_organization("Acme", OPERATOR)
        application.event_history(organization.id)  # applied
        application.catalog.follower.close()  # type: ignore[attr-defined] # nothing applies now
        application.save(*jobs(organization.id, 1, OPERATOR))

        with pytest.raises(CatalogBehind):
            application.list_jobs(organization.id)
        with pytest.raises(CatalogBehind):
            application.event_history(organization.id)
    finally:
        application.close()


def test_a_saved_write_is_not_refused_when_noting_it_for_the_catalog_fails(database_url):
    application = application_on(database_url)
    try:
        organization, _ = application.create_organization("Acme", OPERATOR)
        tables = application.catalog.tables  # type: ignore[attr-defined]
        tables.write("DROP TABLE tenzo_org_writes")  # noting any write now fails
        [job] = jobs(organization.id, 1, OPERATOR)

        application.save(job)  # committed: it answers, it does not raise

        assert application.get_job(organization.id, job.id).id == job.id
        newest = position(application)
        deadline = time.monotonic() + 10
        while newest not in audit_positions(application):  # the follower was woken
            assert time.monotonic() < deadline, "the catalog never applied the write"
            time.sleep(0.01)
    finally:
        application.close()


def test_noting_many_organizations_at_once_moves_each_mark_only_forward(database_url):
    """One note of several organizations over marks noted before (one statement on
    PostgreSQL): a higher position moves a mark, a lower one leaves it, a new
    organization gets its first; positions past 32 bits are kept whole."""
    application = application_on(database_url)
    try:
        catalog = application.catalog  # type: ignore[attr-defined]
        lower, higher, new, big = sorted(uuid4() for _ in range(4))
        catalog.note_writes({lower: 10, higher: 20})

        catalog.note_writes({lower: 5, higher: 30, new: 7, big: 2**40})

        rows = catalog.tables.read("SELECT org_id, position FROM tenzo_org_writes")
        marks = {UUID(row["org_id"]): int(row["position"]) for row in rows}
        assert marks == {lower: 10, higher: 30, new: 7, big: 2**40}
    finally:
        application.close()


@pytest.mark.postgres
def test_a_slow_decode_under_the_followers_lock_is_not_cut_off(postgres_url, key):
    """A batch read and decoded slowly (a wait for the pool, a busy interpreter) under
    the followers' lock still applies: PostgreSQL ends a session idle in a transaction
    for 5 s (eventsourcing's setting), which once failed a loaded follower's batch."""
    writer = application_on(postgres_url, encryption_key=key)
    organization, _ = writer.create_organization("Slow", OPERATOR)
    with psycopg.connect(postgres_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (FOLLOWER_LOCK,))  # no follower works
        writer.save(*jobs(organization.id, 3, OPERATOR))
        newest = position(writer)
        writer.close()
        holder.execute("SELECT pg_advisory_unlock(%s)", (FOLLOWER_LOCK,))

    reader = application_on(postgres_url, encryption_key=key)  # its follower not started
    try:
        catalog = reader.catalog  # type: ignore[attr-defined]
        follower = CatalogFollower(reader, catalog.tables, catalog.position)
        decode = follower._decoded

        def slow_decode(last: int) -> list[Any]:
            time.sleep(6)
            return decode(last)

        follower._decoded = slow_decode  # type: ignore[method-assign]
        assert follower.apply_next_batch()
        assert audit_positions(reader)[-1] == newest
    finally:
        reader.close()
