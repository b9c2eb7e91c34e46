"""Rebuilding the dispatcher's projection (services/dispatcher/rebuild.py), on SQLite
and PostgreSQL: the same tables as the live projection, in bounded memory, resumable."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from domain.actors import OPERATOR
from domain.application import DeveloperTools
from services.dispatcher.projection import PERSONAL_COLUMNS, DispatchProjection
from services.dispatcher.rebuild import REBUILD_LOCK, ProjectionRebuild, RecentAggregates
from services.infrastructure.exclusive_lock import exclusively

KEYS = {"webhooks": "webhook_id", "jobs": "job_id", "candidates": "candidate_id"}


def grow_history(application: DeveloperTools) -> None:
    """Three organizations whose webhooks, jobs and candidates change in turns, so an
    aggregate's events are spread through the log between other aggregates' events."""
    orgs = [application.create_organization(f"Org {n}", OPERATOR)[0] for n in range(3)]
    for org in orgs:
        application.configure_webhook(org.id, "https://example.com/hooks", "s3cret", True, OPERATOR)
    for turn in range(3):
        for org in orgs:
            job, _ = application.upsert_job(
                org.id, {"title": f"Job {turn}", "external_id": f"job-{turn}"}, OPERATOR
            )
            application.upsert_candidate(
                org.id,
                {
                    "job_id": job.id,
                    "external_id": f"candidate-{turn}",
                    "first_name": "Ada",
                    "last_name": f"Lovelace {turn}",
                    "email": "ada@example.com",
                },
                OPERATOR,
            )
        for org in orgs:
            application.upsert_job(
                org.id, {"title": f"Job 0, take {turn}", "external_id": "job-0"}, OPERATOR
            )
            application.change_webhook(org.id, OPERATOR, url=f"https://example.com/v{turn}")
    application.delete_webhook(orgs[0].id, OPERATOR)


def apply_live(projection: DispatchProjection) -> None:
    """Every event as the relay hands it to a live dispatcher."""
    recorder = projection.application.recorder
    for notification in recorder.select_notifications(start=1, limit=100_000):
        projection.apply(
            {
                "aggregate_type": notification.topic.rsplit(":", 1)[-1].split(".")[0],
                "position": notification.id,
                "aggregate_id": str(notification.originator_id),
                "version": notification.originator_version,
            }
        )
    projection.flush_position()


def tables(projection: DispatchProjection) -> dict[str, list[dict[str, Any]]]:
    """The projection's rows, secrets and personal fields decrypted (each encryption has
    its own nonce)."""
    found = {}
    for table, key in KEYS.items():
        rows = projection.tables.read(f"SELECT * FROM tenzo_dispatch_{table} ORDER BY {key}")  # noqa: S608
        found[table] = [dict(row) for row in rows]
    for row in found["webhooks"]:
        row["secret"] = projection._decrypt(row["secret"])
    for row in found["candidates"]:
        sealed = [row[name] for name in PERSONAL_COLUMNS if row[name] is not None]
        opened = projection._personal.open_many(sealed)
        row |= {name: opened.get(row[name]) for name in PERSONAL_COLUMNS if row[name]}
    return found


def newest(application: DeveloperTools) -> int:
    return application.recorder.max_notification_id() or 0


@pytest.fixture
def projection(application: DeveloperTools) -> DispatchProjection:
    grow_history(application)
    return DispatchProjection(application)


def spoil(projection: DispatchProjection) -> None:
    """Rows a rebuild must put right: one wrong, one missing."""
    with projection.tables.transaction() as cursor:
        cursor.execute("UPDATE tenzo_dispatch_jobs SET title = 'stale'")
        cursor.execute("DELETE FROM tenzo_dispatch_candidates")


def test_a_rebuild_yields_the_tables_of_the_live_projection(projection, application):
    apply_live(projection)
    live = tables(projection)
    assert [len(live[table]) for table in KEYS] == [3, 9, 9]
    assert sorted(str(row["secret"]) for row in live["webhooks"]) == ["None", "s3cret", "s3cret"]
    spoil(projection)

    assert projection.rebuild() == newest(application)

    assert tables(projection) == live
    assert projection.position() == newest(application)
    assert not projection.needs_rebuild()


def test_a_rebuild_keeps_no_more_aggregates_than_its_bound(projection, application):
    """With more aggregates than the bound, the ones evicted are read again from the
    event store when their next event comes, and the result is the same."""
    apply_live(projection)
    live = tables(projection)
    spoil(projection)
    recent = RecentAggregates(max_size=2)

    ProjectionRebuild(projection, recent, batch_size=7).run()

    assert tables(projection) == live
    assert recent.peak == 2
    assert recent.store_reads > 0  # evicted aggregates met again


def test_a_rebuild_reads_the_personal_keys_once_a_batch(projection, application, monkeypatch):
    """As `tenzo projections rebuild` starts, with no key in memory: the candidates'
    personal fields are opened and sealed again with one read of their keys for the
    batch, never a key statement per candidate nor a second read to seal."""
    apply_live(projection)
    live = tables(projection)
    spoil(projection)
    keys = projection._personal
    keys._sealing.clear()
    keys._opening.clear()
    reads: list[int] = []
    read_keys = keys._stored_keys

    def counted(subjects: list[str]) -> dict[str, str | None]:
        reads.append(len(subjects))
        return read_keys(subjects)

    def one_key(subject: str) -> Any:
        raise AssertionError(f"the key of {subject} was read on its own")

    monkeypatch.setattr(keys, "_stored_keys", counted)
    monkeypatch.setattr(keys, "_key_for_sealing", one_key)

    ProjectionRebuild(projection, batch_size=1000).run()

    assert reads == [9]  # one batch: the 9 candidates' keys, read to open, kept to seal
    monkeypatch.undo()
    assert tables(projection) == live


class Interrupted(Exception):
    pass


def test_an_interrupted_rebuild_resumes_and_can_restart(projection, application):
    apply_live(projection)
    live = tables(projection)
    spoil(projection)
    total = newest(application)

    def stop_after_the_first_batch(events: int) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        ProjectionRebuild(projection, batch_size=10).run(progress=stop_after_the_first_batch)
    assert projection.needs_rebuild()  # a dispatcher starting now would finish it
    # Emptied with the first batch and filled only as far as it went.
    partial = tables(projection)["jobs"]
    assert len(partial) < len(live["jobs"])
    assert "stale" not in [row["title"] for row in partial]

    resumed: list[int] = []
    assert ProjectionRebuild(projection, batch_size=10).run(progress=resumed.append) == total
    assert sum(resumed) == total - 10  # only the events after the first batch
    assert tables(projection) == live
    assert not projection.needs_rebuild()
    assert projection.position() == total

    again: list[int] = []
    spoil(projection)
    projection.rebuild(progress=again.append, restart=True)
    assert sum(again) == total
    assert tables(projection) == live


def test_an_empty_store_rebuilds_to_empty_tables(application):
    projection = DispatchProjection(application)
    assert projection.rebuild() == 0
    assert tables(projection) == {"webhooks": [], "jobs": [], "candidates": []}
    assert not projection.needs_rebuild()


def test_the_command_resumes_or_restarts(projection, application, settings_env, monkeypatch):
    from click.testing import CliRunner

    from services.cli.main import main

    apply_live(projection)
    live = tables(projection)
    spoil(projection)
    for name, value in settings_env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(Interrupted):
        ProjectionRebuild(projection, batch_size=10).run(progress=_interrupt)

    resumed = CliRunner().invoke(main, ["projections", "rebuild"])
    assert resumed.exit_code == 0, resumed.output
    assert f"Projection rebuilt up to position {newest(application)}." in resumed.output
    assert tables(projection) == live and not projection.needs_rebuild()

    spoil(projection)
    restarted = CliRunner().invoke(main, ["projections", "rebuild", "--restart"])
    assert restarted.exit_code == 0, restarted.output
    assert tables(projection) == live


def _interrupt(events: int) -> None:
    raise Interrupted


@pytest.fixture
def another_process(settings):
    """A second application on the same database, with a pool of its own (as another
    process has)."""
    from services.bootstrap import build_application

    other = build_application(settings)
    try:
        yield other
    finally:
        other.close()


def test_two_rebuilds_at_once_give_the_right_tables_and_never_move_the_position_back(
    projection, application, another_process
):
    apply_live(projection)
    live = tables(projection)
    spoil(projection)
    ahead = newest(application) + 50  # a live dispatcher has seen later events
    with projection.tables.transaction() as cursor:
        projection._position.advance(cursor, ahead)
    rebuilds = [
        ProjectionRebuild(projection, batch_size=5),
        ProjectionRebuild(DispatchProjection(another_process), batch_size=5),
    ]
    start = threading.Barrier(2)
    reached: list[int] = []
    failures: list[BaseException] = []

    def rebuild(one: ProjectionRebuild) -> None:
        try:
            start.wait()
            reached.append(one.run(restart=True))
        except BaseException as failure:  # noqa: BLE001 - reported below
            failures.append(failure)

    threads = [threading.Thread(target=rebuild, args=(one,)) for one in rebuilds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert failures == []
    assert reached == [newest(application)] * 2
    assert tables(projection) == live
    assert projection.position() == ahead  # not moved back to the rebuilds' end
    assert not projection.needs_rebuild()


def test_a_starting_dispatcher_skips_a_rebuild_under_way_and_the_command_waits(
    projection, application
):
    apply_live(projection)
    live = tables(projection)
    spoil(projection)
    with projection.tables.transaction() as cursor:  # as if never filled
        cursor.execute("UPDATE tenzo_dispatch_position SET position = 0")
    assert projection.needs_rebuild()
    waiting = threading.Event()
    done: list[int] = []
    with exclusively(projection.tables, REBUILD_LOCK, wait=True):  # another rebuild
        assert projection.rebuild_if_needed() is None  # a dispatcher starting: skips
        command = threading.Thread(
            target=lambda: done.append(projection.rebuild(waiting=waiting.set))
        )
        command.start()
        assert waiting.wait(10)  # the command waits for the other one's end
        assert done == [] and tables(projection) != live
    command.join(60)

    assert done == [newest(application)]
    assert tables(projection) == live
    assert not projection.needs_rebuild()
    assert projection.rebuild_if_needed() is None  # nothing to do any more
