"""How fast the catalog's follower catches up on PostgreSQL (issue 14: >= 10,000 events/s).

Writes ``--events`` events through the application (a thousand jobs per save, split
across ``--orgs`` organizations) on a fresh PostgreSQL database while a session holds
the followers' advisory lock (so nothing is applied meanwhile), releases the lock, and
times the follower from the first batch to the last event. Also reports how long the
read of an organization that wrote nothing in the backlog takes while the backlog is
still unapplied. Not a test: a measurement, printed.

    .venv/bin/python bench/catalog_catch_up.py --events 100000
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from domain.actors import OPERATOR  # noqa: E402
from domain.application import DeveloperTools  # noqa: E402
from services.bootstrap import build_application  # noqa: E402
from services.infrastructure.catalog_follower import FOLLOWER_LOCK  # noqa: E402
from services.settings import Settings  # noqa: E402
from tests.support.applications import jobs  # noqa: E402

POSTGRES_URL = os.environ.get("TENZO_BENCH_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/root")


def arguments(description: str) -> argparse.Namespace:
    """The command line of the catalog's benchmarks (this one, bench/catalog_plans.py)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--orgs", type=int, default=10)
    return parser.parse_args()


@contextmanager
def fresh_application(**settings: Any) -> Iterator[tuple[str, DeveloperTools]]:
    """(its URL, the application) on a fresh PostgreSQL database, dropped afterwards;
    ``settings`` are other Settings fields."""
    name = f"tenzo_bench_{uuid.uuid4().hex[:12]}"
    admin = psycopg.connect(POSTGRES_URL, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    url = POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    key = base64.b64encode(os.urandom(32)).decode()
    app = build_application(Settings(database_url=url, encryption_key=key, **settings))
    try:
        yield url, app
    finally:
        app.close()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def main() -> None:
    args = arguments(__doc__.split("\n")[0])
    with fresh_application() as (url, app):
        small, _ = app.create_organization("Small", OPERATOR)
        app.list_jobs(small.id)  # caught up: the small organization's writes are applied
        orgs = [app.create_organization(f"Org {n}", OPERATOR)[0].id for n in range(args.orgs)]
        with psycopg.connect(url, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", (FOLLOWER_LOCK,))
            started = time.perf_counter()
            for batch in range(args.events // 1000):
                org_id = orgs[batch % len(orgs)]
                app.save(*jobs(org_id, 1000, OPERATOR))
            written = time.perf_counter() - started
            end = app.recorder.max_notification_id() or 0
            reads = []
            for _ in range(20):
                begun = time.perf_counter()
                app.list_jobs(small.id)
                reads.append(time.perf_counter() - begun)
            before = app.catalog.position.read()  # type: ignore[attr-defined]
            holder.execute("SELECT pg_advisory_unlock(%s)", (FOLLOWER_LOCK,))
        started, cpu = time.perf_counter(), time.process_time()
        app.catalog.follower.wake()  # type: ignore[attr-defined]
        while app.catalog.position.read() < end:  # type: ignore[attr-defined]
            time.sleep(0.01)
        took, cpu = time.perf_counter() - started, time.process_time() - cpu
        applied = end - before
        print(f"wrote {args.events} events through the application in {written:.1f} s")
        print(
            f"small organization's read during the backlog: p50 {statistics.median(reads) * 1000:.1f} ms"
        )
        print(f"catch-up: {applied} events in {took:.2f} s = {applied / took:,.0f} events/s")
        print(f"  this process's CPU: {cpu:.2f} s = {applied / cpu:,.0f} events per CPU second")
        print(f"  load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
