"""Which plan PostgreSQL picks for every list and filter of the catalog, and their p50.

Grows a fresh PostgreSQL database through the application to ``--events`` events over
``--orgs`` organizations (jobs, candidates of one job per organization, deliveries,
API keys: a thousand aggregates per save), lets the catalog catch up, ANALYZEs, then
prints for each list and filter the query's plan (EXPLAIN ANALYZE, first lines) and
the p50 of the use case through the application. Not a test: a measurement, printed.

    .venv/bin/python bench/catalog_plans.py --events 100000
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.catalog_catch_up import arguments, fresh_application  # noqa: E402
from domain.actors import OPERATOR  # noqa: E402
from domain.api_keys import ApiKey  # noqa: E402
from domain.deliveries import Delivery  # noqa: E402
from domain.recruiting import Candidate, Job  # noqa: E402
from tests.support.applications import jobs  # noqa: E402


def job(org_id: uuid.UUID) -> Job:
    [made] = jobs(org_id, 1, OPERATOR)
    return made


def candidate(org_id: uuid.UUID, job_id: uuid.UUID, n: int) -> Candidate:
    return Candidate(
        org_id=org_id,
        job_id=job_id,
        external_id=None,
        first_name="Ada",
        last_name=f"L{n}",
        email=f"ada{n}@example.com",
        phone=None,
        resume_url=None,
        actor=OPERATOR,
    )


def delivery(org_id: uuid.UUID, n: int) -> Delivery:
    return Delivery(
        org_id=org_id,
        event_id=str(uuid.uuid4()),
        event_type="job.created",
        url="https://example.com/hook",
        body="{}",
        actor=OPERATOR,
    )


def key(org_id: uuid.UUID, n: int) -> ApiKey:
    return ApiKey(
        org_id=org_id,
        name=f"key {n}",
        key_hash=uuid.uuid4().hex,
        key_hint="tenzo_pk_…abcd",
        expires_at=None,
        actor=OPERATOR,
    )


def p50_ms(read: Callable[[], Any], runs: int = 30) -> float:
    read()
    took = []
    for _ in range(runs):
        started = time.perf_counter()
        read()
        took.append(time.perf_counter() - started)
    return statistics.median(took) * 1000


def plan(connection: psycopg.Connection[Any], sql: str, params: dict[str, Any]) -> str:
    rows = connection.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + sql, params)
    lines = [row[0] for row in rows.fetchall()]
    return "\n    ".join(line for line in lines if "Planning" not in line)


def main() -> None:
    args = arguments(__doc__.split("\n")[0])
    with fresh_application(catalog_wait_seconds=600) as (url, app):
        orgs = [app.create_organization(f"Org {n}", OPERATOR)[0].id for n in range(args.orgs)]
        first_jobs = {org_id: job(org_id) for org_id in orgs}
        app.save(*first_jobs.values())
        makers = [
            lambda org_id, n: job(org_id),
            lambda org_id, n: candidate(org_id, first_jobs[org_id].id, n),
            delivery,
            key,
        ]
        for batch in range(args.events // 1000):
            org_id = orgs[batch % len(orgs)]
            make = makers[(batch // len(orgs)) % len(makers)]
            app.save(*(make(org_id, n) for n in range(1000)))
        org_id = orgs[0]
        app.catalog.wait_for_writes(org_id)
        for other in orgs:
            app.catalog.wait_for_writes(other)
        events = app.recorder.max_notification_id() or 0
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("ANALYZE")
            org, job_id = str(org_id), str(first_jobs[org_id].id)
            aggregate = str(first_jobs[org_id].id)
            lists = {
                "history": (
                    "SELECT item FROM tenzo_audit WHERE org_id = %(org)s AND position > 0 "
                    "ORDER BY position LIMIT 100",
                    lambda: app.event_history(org_id),
                ),
                "history type=": (
                    "SELECT item FROM tenzo_audit WHERE org_id = %(org)s AND position > 0 "
                    "AND type = 'ApiKeyCreated' ORDER BY position LIMIT 100",
                    lambda: app.event_history(org_id, type="ApiKeyCreated"),
                ),
                "history aggregate_id=": (
                    "SELECT item FROM tenzo_audit WHERE org_id = %(org)s AND position > 0 "
                    "AND aggregate_id = %(aggregate)s ORDER BY position LIMIT 100",
                    lambda: app.event_history(org_id, aggregate_id=first_jobs[org_id].id),
                ),
                "jobs": (
                    "SELECT position, aggregate_id FROM tenzo_catalog WHERE org_id = %(org)s "
                    "AND aggregate_type = 'Job' ORDER BY position DESC LIMIT 21",
                    lambda: app.list_jobs(org_id),
                ),
                "candidates job_id=": (
                    "SELECT position, aggregate_id FROM tenzo_catalog WHERE org_id = %(org)s "
                    "AND aggregate_type = 'Candidate' AND parent_id = %(job)s "
                    "ORDER BY position DESC LIMIT 21",
                    lambda: app.list_candidates(org_id, job_id=first_jobs[org_id].id),
                ),
                "deliveries status=": (
                    "SELECT position, aggregate_id FROM tenzo_catalog WHERE org_id = %(org)s "
                    "AND aggregate_type = 'Delivery' AND status = 'pending' "
                    "ORDER BY position DESC LIMIT 21",
                    lambda: app.list_deliveries(org_id, status="pending"),
                ),
                "api keys": (
                    "SELECT position, aggregate_id FROM tenzo_catalog WHERE org_id = %(org)s "
                    "AND aggregate_type = 'ApiKey' ORDER BY position DESC LIMIT 101",
                    lambda: app.list_api_keys(org_id),
                ),
            }
            params = {"org": org, "job": job_id, "aggregate": aggregate}
            print(f"{events} events, {args.orgs} organizations (PostgreSQL)")
            for title, (sql, read) in lists.items():
                print(f"{title}: p50 {p50_ms(read):.1f} ms (the use case)")
                print("    " + plan(connection, sql, params))


if __name__ == "__main__":
    main()
