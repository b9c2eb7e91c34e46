"""How fast, and in how much memory, `tenzo projections rebuild` refills the
dispatcher's projection from a PostgreSQL event store (issue 14, item 3).

Grows a fresh database through the application to each size asked for (organizations
with a webhook, 20 jobs and 2,000 candidates, 40% of them updated once; the webhook
changed once), then rebuilds the projection in a child process of its own, so that its
peak RSS is the rebuild's alone, and prints events/s (wall clock and per second of the
rebuilding process's CPU, the figure least moved by other load on a shared machine)
and peak RSS. Not a test: nothing is timed in the suite.

Run: `.venv/bin/python bench/rebuild.py --events 200000 600000` (PostgreSQL from
TENZO_BENCH_POSTGRES_URL; the database is dropped afterwards unless --keep).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import resource
import subprocess
import sys
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg

POSTGRES_URL = os.environ.get(
    "TENZO_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def grow(url: str, key: str, events: int) -> None:
    """Add organizations through the application until the log holds ``events``."""
    from domain.actors import OPERATOR
    from domain.recruiting import Candidate, Job
    from services.bootstrap import build_application
    from services.settings import Settings

    application = build_application(Settings(database_url=url, encryption_key=key))
    rng = random.Random(14)
    while (application.recorder.max_notification_id() or 0) < events:
        org, _ = application.create_organization(f"Org {uuid.uuid4()}", OPERATOR)
        application.configure_webhook(org.id, "https://example.com/hooks", "s3cret", True, OPERATOR)
        jobs = [
            Job(org_id=org.id, external_id=None, title=f"Job {n}", description=None,
                location=None, department=None, employment_type=None, status="open",
                actor=OPERATOR)
            for n in range(20)
        ]  # fmt: skip
        application.save(*jobs)
        for _ in range(4):
            candidates = []
            for n in range(500):
                candidate = Candidate(
                    org_id=org.id, job_id=rng.choice(jobs).id, external_id=None,
                    first_name="Ada", last_name=f"Lovelace {n}", email=f"ada{n}@example.com",
                    phone=None, resume_url=None, actor=OPERATOR,
                )  # fmt: skip
                if rng.random() < 0.4:
                    candidate.update({"last_name": "Byron"}, OPERATOR)
                candidates.append(candidate)
            application.save(*candidates)
        application.change_webhook(org.id, OPERATOR, url="https://example.com/v2")
    application.close()


def rebuild(url: str, key: str) -> None:
    """(The child process.) Rebuild and print the figures as JSON."""
    from services.bootstrap import build_application
    from services.dispatcher.projection import DispatchProjection
    from services.settings import Settings

    application = build_application(Settings(database_url=url, encryption_key=key))
    projection = DispatchProjection(application)
    started = time.perf_counter()
    events = projection.rebuild(restart=True)
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    print(json.dumps({"events": events, "seconds": seconds, "cpu_seconds": cpu,
                      "peak_rss_mb": usage.ru_maxrss / 1024}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, nargs="+", default=[100_000, 200_000])
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--rebuild", nargs=2, metavar=("URL", "KEY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rebuild:
        rebuild(*args.rebuild)
        return
    name = f"tenzo_bench_rebuild_{uuid.uuid4().hex[:12]}"
    url = urlunsplit(urlsplit(POSTGRES_URL)._replace(path="/" + name))
    key = base64.b64encode(os.urandom(32)).decode()
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        print("| events | seconds | events/s | events per CPU second | peak RSS MB |")
        print("|---|---|---|---|---|")
        for events in sorted(args.events):
            grow(url, key, events)
            child = [sys.executable, __file__, "--rebuild", url, key]
            result = json.loads(subprocess.run(child, check=True, capture_output=True).stdout)
            print(
                f"| {result['events']:,} | {result['seconds']:.1f} "
                f"| {result['events'] / result['seconds']:,.0f} "
                f"| {result['events'] / result['cpu_seconds']:,.0f} "
                f"| {result['peak_rss_mb']:.0f} |",
                flush=True,
            )
    finally:
        if not args.keep:
            with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
