"""Flat at scale (issue 14's benchmark): what lists, filters, export, the catalog and a
rebuild cost as the event store grows, and how the dispatcher treats a busy endpoint.

Grows a fresh PostgreSQL database (``tenzo_scale_<hex>``, dropped at the end unless
``--keep``) through the application (``DeveloperTools.save`` of many aggregates per
transaction: jobs, candidates, deliveries of three outcomes, spread over 100
organizations, one tenth in the measured one) and, at each of ``--sizes`` events,
measures over the API as `tenzo api` builds it (``create_app(build_api(...))``, driven
by Flask's test client in this process):

- p50 of every list and filter: history unfiltered, ``?type=``, ``?aggregate_id=``;
  ``GET /v1/jobs``, ``GET /v1/candidates?job_id=``, ``GET /admin/v1/deliveries?status=``
  and ``GET /admin/v1/api-keys`` (its first page) with ``--keys`` keys;
- export events/s (``GET /admin/v1/events/export`` of the measured organization);
- the time until a read sees the growth's newest event (the catalog's backlog then);
- a small organization's first history page right after a big one wrote
  ``--big-writes`` events;
- after a ``--backlog``-event backlog of the big one, written while the catalog's
  followers are held back (this benchmark holds their PostgreSQL lock), the measured
  organization writes a job (``POST /v1/jobs``) and, the followers let go, reads it back
  (history by aggregate id, ``/v1/jobs``): seen or not, and how long that took; and the
  catalog's catch-up events/s over that backlog;
- ``tenzo projections rebuild`` (a subprocess): time and peak RSS (its VmHWM).

The two scenarios (the big organization's writes) run last at each size; their events
count towards the next size.

A read answered 503 (the catalog is behind) is retried after its Retry-After (at
most 0.25 s), the wait counted in its latency. Then, unless ``--no-dispatch``, on a
database of its own: a busy but healthy endpoint (200 after 1.5 s, one organization,
``--busy-interviews`` messages) and a CPU-contention run (throughput of
``tenzo dispatcher`` alone and beside one CPU-burning process per core, in
alternating pairs), with bench/dispatch.py's receiver and publisher.

Run: `.venv/bin/python bench/scale.py` (PostgreSQL from TENZO_BENCH_POSTGRES_URL,
RabbitMQ from TENZO_BENCH_AMQP_URL). Not a test: figures go to docs/benchmarks.md
between this benchmark's markers.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import dispatch  # noqa: E402
from domain import credentials  # noqa: E402
from domain.actors import OPERATOR  # noqa: E402
from domain.api_keys import ApiKey  # noqa: E402
from domain.deliveries import Delivery  # noqa: E402
from domain.organizations import Organization  # noqa: E402
from domain.recruiting import Candidate, Job  # noqa: E402
from services.infrastructure.catalog_follower import FOLLOWER_LOCK  # noqa: E402

DOCS = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- scale:start -->", "<!-- scale:end -->"
COMMAND = ".venv/bin/python bench/scale.py"
POSTGRES_URL = dispatch.POSTGRES_URL
TENZO = dispatch.TENZO
EVENTS_PER_UNIT = 19  # a job, 4 candidates, 5 deliveries (3 succeeded, 1 failed, 1 pending)
UNITS_PER_SAVE = 100  # 1,900 events per transaction
RETRY_AFTER_CAP = 0.25
READ_DEADLINE = 300.0
MIN_TIMED_BACKLOG = 5000  # a smaller backlog is over too soon to time a rate

# Targets (issue 14), checked at the largest size measured.
LIST_P50_MS = 25.0
SMALL_READ_MS = 100.0
CATCH_UP_PER_SECOND = 10_000.0
REBUILD_RSS_MB = 100.0
BUSY_PER_SECOND = 4.0

LISTS = [
    "history, unfiltered",
    "history ?type=",
    "history ?aggregate_id=",
    "/v1/jobs",
    "/v1/candidates?job_id=",
    "/admin/v1/deliveries?status=",
    "/admin/v1/api-keys",
]


# -- the store ----------------------------------------------------------------------------


@dataclass
class Tenant:
    """An organization the benchmark reads as: its admin token and API key."""

    id: uuid.UUID
    admin: dict[str, str]
    public: dict[str, str] = field(default_factory=dict)


@dataclass
class Store:
    application: Any
    client: Any
    database_url: str
    measured: Tenant
    small: Tenant
    big: uuid.UUID
    fillers: list[uuid.UUID]
    units: int = 0
    first_job: uuid.UUID | None = None
    first_delivery: uuid.UUID | None = None
    newest_measured: int = 0  # position of the measured organization's newest event

    def size(self) -> int:
        return int(self.application.recorder.max_notification_id() or 0)


def unit(org_id: uuid.UUID, number: int) -> list[Any]:
    """A job, four candidates of it and five deliveries: 19 events."""
    job = Job(
        org_id=org_id,
        external_id=f"job-{number}",
        title="Backend engineer",
        description="Builds and runs the services.",
        location="Berlin",
        department="Engineering",
        employment_type="full-time",
        status="open",
        actor=OPERATOR,
    )
    aggregates: list[Any] = [job]
    for index in range(4):
        aggregates.append(
            Candidate(
                org_id=org_id,
                job_id=job.id,
                external_id=f"cand-{number}-{index}",
                first_name="Ada",
                last_name=f"Lovelace {number}",
                email=f"ada{number}.{index}@example.com",
                phone=None,
                resume_url=None,
                actor=OPERATOR,
            )
        )
    now = datetime.now(UTC)
    for outcome in ("succeeded", "succeeded", "succeeded", "failed", "pending"):
        event_id = str(uuid.uuid4())
        delivery = Delivery(
            org_id=org_id,
            event_id=event_id,
            event_type="interview.completed",
            url="https://hooks.example.com/tenzo",
            body=json.dumps({"event_id": event_id, "event_type": "interview.completed"}),
            actor=OPERATOR,
        )
        delivery.record_attempt(
            started_at=now,
            status_code=500 if outcome == "failed" else 200,
            duration_ms=42,
            error=None,
            response_excerpt="ok",
            actor=OPERATOR,
        )
        if outcome == "succeeded":
            delivery.succeed(actor=OPERATOR)
        elif outcome == "failed":
            delivery.fail("HTTP 500 on the last attempt", actor=OPERATOR)
        aggregates.append(delivery)
    return aggregates


def save_units(store: Store, owners: list[uuid.UUID]) -> int:
    """One transaction of a unit per owner; the position of the last event saved."""
    aggregates: list[Any] = []
    for owner in owners:
        made = unit(owner, store.units)
        store.units += 1
        if owner == store.measured.id and store.first_job is None:
            store.first_job, store.first_delivery = made[0].id, made[5].id
        aggregates += made
    recordings = store.application.save(*aggregates)
    return int(max(recording.notification.id for recording in recordings))


def grow(store: Store, target: int, share: float) -> tuple[int, float]:
    """Units until the store holds ``target`` events; every batch ends with a unit of the
    measured organization. (events written, seconds)."""
    before, started = store.size(), time.perf_counter()
    every = max(1, round(1 / share))
    size = before
    while size < target:
        count = max(1, min(UNITS_PER_SAVE, math.ceil((target - size) / EVENTS_PER_UNIT)))
        owners = [
            store.measured.id
            if (store.units + i) % every == 0
            else store.fillers[(store.units + i) % len(store.fillers)]
            for i in range(count - 1)
        ]
        store.newest_measured = save_units(store, [*owners, store.measured.id])
        size = store.size()
    return size - before, time.perf_counter() - started


def write_for(store: Store, org_id: uuid.UUID, events: int) -> None:
    """About ``events`` events of one organization, UNITS_PER_SAVE units at a time."""
    units = math.ceil(events / EVENTS_PER_UNIT)
    while units > 0:
        count = min(UNITS_PER_SAVE, units)
        save_units(store, [org_id] * count)
        units -= count


def build_store(application: Any, client: Any, database_url: str, keys: int, orgs: int) -> Store:
    measured_org, measured_token = application.create_organization("Measured", OPERATOR)
    small_org, small_token = application.create_organization("Small", OPERATOR)
    measured = Tenant(measured_org.id, {"Authorization": f"Bearer {measured_token}"})
    small = Tenant(small_org.id, {"Authorization": f"Bearer {small_token}"})
    created = client.post("/admin/v1/api-keys", json={"name": "benchmark"}, headers=measured.admin)
    if created.status_code != 201:
        raise SystemExit(f"creating an API key: {created.status_code} {created.text}")
    measured.public = {"Authorization": f"Bearer {created.json['key']}"}
    filler_keys = []
    for _ in range(keys - 1):
        minted = credentials.mint(credentials.API_KEY_PREFIX)
        filler_keys.append(
            ApiKey(
                org_id=measured.id,
                name="filler",
                key_hash=minted.hash,
                key_hint=minted.hint,
                expires_at=None,
                actor=OPERATOR,
            )
        )
    for first in range(0, len(filler_keys), 2000):
        application.save(*filler_keys[first : first + 2000])
    others = [Organization(name=f"Filler {n}", actor=OPERATOR) for n in range(orgs - 1)]
    application.save(*others)
    fillers = [organization.id for organization in others]
    return Store(application, client, database_url, measured, small, fillers[0], fillers)


# -- reads --------------------------------------------------------------------------------


def read(client: Any, path: str, headers: dict[str, str]) -> tuple[Any, float]:
    """GET ``path``; a 503 (the catalog is behind) is retried after its Retry-After
    (capped), the wait counted. (response, seconds)."""
    began = time.perf_counter()
    while True:
        response = client.get(path, headers=headers)
        waited = time.perf_counter() - began
        if response.status_code == 503 and waited < READ_DEADLINE:
            retry_after = response.headers.get("Retry-After", "0.05")
            try:
                pause = float(retry_after)
            except ValueError:
                pause = 0.05
            time.sleep(min(max(pause, 0.01), RETRY_AFTER_CAP))
            continue
        if response.status_code != 200:
            raise SystemExit(
                f"GET {path}: {response.status_code} {response.get_data(as_text=True)}"
            )
        return response, waited


def list_paths(store: Store) -> dict[str, tuple[str, dict[str, str]]]:
    admin, public = store.measured.admin, store.measured.public
    return {
        "history, unfiltered": ("/admin/v1/events", admin),
        "history ?type=": ("/admin/v1/events?type=JobCreated", admin),
        "history ?aggregate_id=": (
            f"/admin/v1/events?aggregate_id={store.first_delivery}",
            admin,
        ),
        "/v1/jobs": ("/v1/jobs", public),
        "/v1/candidates?job_id=": (f"/v1/candidates?job_id={store.first_job}", public),
        "/admin/v1/deliveries?status=": ("/admin/v1/deliveries?status=failed", admin),
        "/admin/v1/api-keys": ("/admin/v1/api-keys", admin),
    }


def list_p50s(store: Store, repeats: int) -> dict[str, float]:
    """p50 ms of each list and filter, after one unmeasured warm-up read each."""
    p50s = {}
    for name, (path, headers) in list_paths(store).items():
        read(store.client, path, headers)
        p50s[name] = 1000 * statistics.median(
            read(store.client, path, headers)[1] for _ in range(repeats)
        )
    return p50s


def catch_up(store: Store, written: int) -> tuple[int, float]:
    """(backlog, seconds): the catalog's backlog now, and the time until a read of the
    measured organization sees its newest event (given time for a catalog as slow as
    1,000 events/s: the old one caught up at 1,500-2,200)."""
    position = catalog_position(store)
    backlog = store.size() - (store.size() - written if position is None else position)
    path = f"/admin/v1/events?after={store.newest_measured - 1}&limit=1"
    deadline = READ_DEADLINE + backlog / 1000
    began = time.perf_counter()
    while True:
        response, _ = read(store.client, path, store.measured.admin)
        items = response.json["items"]
        if items and items[0]["position"] == store.newest_measured:
            return backlog, time.perf_counter() - began
        if time.perf_counter() - began > deadline:
            raise SystemExit(f"the catalog did not show the newest event in {deadline:.0f} s")


def catalog_position(store: Store) -> int | None:
    """The catalog's position, where the current code keeps it (None elsewhere)."""
    try:
        with psycopg.connect(store.database_url, autocommit=True) as db:
            row = db.execute(
                "SELECT position FROM tenzo_positions WHERE name = 'catalog'"
            ).fetchone()
    except psycopg.Error:
        return None
    return int(row[0]) if row else 0


def export_rate(store: Store) -> tuple[int, float]:
    """(events, events/s) of the measured organization's whole export."""
    began = time.perf_counter()
    response, _ = read(store.client, "/admin/v1/events/export", store.measured.admin)
    lines = response.get_data().count(b"\n")
    return lines, lines / (time.perf_counter() - began)


def small_after_big(store: Store, events: int) -> float:
    """ms of the small organization's first history page after the big one's writes."""
    write_for(store, store.big, events)
    return 1000 * read(store.client, "/admin/v1/events", store.small.admin)[1]


def read_own_write(
    store: Store, backlog: int, label: str
) -> tuple[bool, bool, float, tuple[int, float]]:
    """The big organization writes ``backlog`` events while the catalog's followers are
    kept from working (this benchmark holds their PostgreSQL lock, as a slow or stopped
    follower would), then the measured one writes a job; the lock is let go and the
    measured organization reads the job back. (seen in the history, seen in /v1/jobs,
    ms for both reads, (events the catalog then caught up, seconds it took)).

    Where the catalog is not a background follower (the code before issue 14) the lock
    holds nobody back and the reads catch up themselves."""
    holder = psycopg.connect(store.database_url, autocommit=True)
    holder.execute("SELECT pg_advisory_lock(%s)", (FOLLOWER_LOCK,))
    try:
        write_for(store, store.big, backlog)
        written = store.client.post(
            "/v1/jobs",
            json={"external_id": f"probe-{label}", "title": "Read-your-writes probe"},
            headers=store.measured.public,
        )
        start = catalog_position(store) or 0
    finally:
        holder.execute("SELECT pg_advisory_unlock(%s)", (FOLLOWER_LOCK,))
        holder.close()
    released = time.perf_counter()
    if written.status_code not in (200, 201):
        raise SystemExit(f"POST /v1/jobs: {written.status_code} {written.text}")
    job_id = written.json["id"]
    history, first = read(
        store.client, f"/admin/v1/events?aggregate_id={job_id}", store.measured.admin
    )
    jobs, second = read(store.client, "/v1/jobs?limit=100", store.measured.public)
    in_history = any(item["aggregate_id"] == job_id for item in history.json["items"])
    in_jobs = any(item["id"] == job_id for item in jobs.json["items"])
    end = store.size()
    while (catalog_position(store) or 0) < end:
        if time.perf_counter() - released > READ_DEADLINE + backlog / 1000:
            raise SystemExit("the catalog did not catch up with the backlog")
        time.sleep(0.01)
    caught_up = (end - start, time.perf_counter() - released)
    return in_history, in_jobs, 1000 * (first + second), caught_up


def rebuild(env: dict[str, str]) -> tuple[float, float]:
    """`tenzo projections rebuild` from the first event, as a subprocess: (seconds,
    peak RSS in MB).

    The peak is the child's own VmHWM (/proc/<pid>/status), read until it exits: the
    ``ru_maxrss`` of wait4 would count this benchmark's own memory, which a forked child
    carries until it execs (Linux keeps the larger of the two)."""
    command = [TENZO, "projections", "rebuild"]
    helped = subprocess.run([*command, "--help"], capture_output=True, text=True, check=False)
    if "--restart" in helped.stdout:  # a resumable rebuild: time a whole one each time
        command.append("--restart")
    began = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=errors
        )
        status = Path(f"/proc/{process.pid}/status")
        peak_kib = 0
        while process.poll() is None:
            with contextlib.suppress(OSError):  # it has just exited
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak_kib = max(peak_kib, int(line.split()[1]))
            time.sleep(0.05)
        seconds = time.perf_counter() - began
        if process.returncode != 0:
            errors.seek(0)
            raise SystemExit(f"tenzo projections rebuild failed: {errors.read().decode()}")
    return seconds, peak_kib / 1024


# -- one size -----------------------------------------------------------------------------


@dataclass
class Figures:
    size: int = 0
    grown: int = 0
    grow_per_second: float = 0.0
    lists: dict[str, float] = field(default_factory=dict)
    growth_backlog: int = 0
    growth_seen_seconds: float = 0.0
    backlog: int = 0  # the catalog's backlog when its followers were let go
    catch_up_seconds: float = 0.0
    export_events: int = 0
    export_per_second: float = 0.0
    small_read_ms: float = 0.0
    own_in_history: bool = False
    own_in_jobs: bool = False
    own_read_ms: float = 0.0
    rebuild_seconds: float = 0.0
    rebuild_rss_mb: float = 0.0

    @property
    def catch_up_per_second(self) -> float | None:
        """None when the backlog was too small to time a rate (a catalog caught up by
        its readers, before issue 14, had none left once they had read)."""
        if self.backlog < MIN_TIMED_BACKLOG or self.catch_up_seconds <= 0:
            return None
        return self.backlog / self.catch_up_seconds

    def catch_up_text(self) -> str:
        rate = self.catch_up_per_second
        if rate is None:
            return f"— (backlog {self.backlog:,})"
        return f"{rate:,.0f} ({self.backlog:,} in {self.catch_up_seconds:.1f} s)"


def analyze(store: Store) -> None:
    """Table statistics, as autovacuum keeps them on a running server. Without them (this
    machine's PostgreSQL runs with autovacuum off) the planner guesses a page read's rows
    by the million and JIT-compiles it: 3 ms of compiling for a 0.3 ms query."""
    with psycopg.connect(store.database_url, autocommit=True) as connection:
        connection.execute("ANALYZE")


def measure(store: Store, target: int, args: Any, env: dict[str, str]) -> Figures:
    figures = Figures()
    print(f"growing to {target:,} events …", flush=True)
    figures.grown, seconds = grow(store, target, args.measured_share)
    figures.grow_per_second = figures.grown / seconds if seconds else 0.0
    figures.size = store.size()
    print(f"  {figures.size:,} events ({figures.grow_per_second:,.0f} events/s written)")
    figures.growth_backlog, figures.growth_seen_seconds = catch_up(store, figures.grown)
    print(
        f"  newest event seen {figures.growth_seen_seconds:.2f} s after the growth "
        f"(catalog backlog then {figures.growth_backlog:,})"
    )
    analyze(store)
    figures.lists = list_p50s(store, args.repeats)
    print("  " + ", ".join(f"{name}: {ms:.1f} ms" for name, ms in figures.lists.items()))
    figures.export_events, figures.export_per_second = export_rate(store)
    print(f"  export: {figures.export_events:,} events, {figures.export_per_second:,.0f}/s")
    figures.rebuild_seconds, figures.rebuild_rss_mb = rebuild(env)
    print(f"  rebuild: {figures.rebuild_seconds:.1f} s, {figures.rebuild_rss_mb:.0f} MB")
    # The scenarios' writes come last: they count towards the next size.
    figures.small_read_ms = small_after_big(store, args.big_writes)
    print(f"  small organization's read after {args.big_writes:,}: {figures.small_read_ms:.0f} ms")
    (
        figures.own_in_history,
        figures.own_in_jobs,
        figures.own_read_ms,
        (figures.backlog, figures.catch_up_seconds),
    ) = read_own_write(store, args.backlog, str(target))
    print(
        f"  own write after a {args.backlog:,} backlog: history {figures.own_in_history}, "
        f"/v1/jobs {figures.own_in_jobs}, {figures.own_read_ms:.0f} ms; catalog catch-up "
        f"{figures.catch_up_text()}"
    )
    return figures


# -- the dispatcher -------------------------------------------------------------------------


@dataclass
class DispatchFigures:
    busy_messages: int
    busy_ms: int
    busy_per_second: float
    contention_messages: int
    pairs: list[tuple[float, float]]  # (alone, beside the hogs) deliveries/s
    hogs: int

    @property
    def ratio(self) -> float:
        """The median of the pairs' ratios (beside the hogs / alone)."""
        return statistics.median(hogged / alone for alone, hogged in self.pairs)


def dispatch_runs(args: Any, workdir: Path) -> DispatchFigures:
    """A busy endpoint and a contention run of one `tenzo dispatcher` process."""
    from services.bootstrap import build_application
    from services.settings import Settings

    receiver = dispatch.start_receiver(workdir)
    suffix = uuid.uuid4().hex[:10]
    database = f"tenzo_scale_dispatch_{suffix}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    database_url = urlunsplit(urlsplit(POSTGRES_URL)._replace(path="/" + database))
    vhost = f"tenzo-scale-{suffix}"
    dispatcher = application = None
    hogs: list[subprocess.Popen[bytes]] = []
    try:
        amqp_url = dispatch.make_vhost(vhost)
        metrics_port = free_port()
        env = {
            "TENZO_DATABASE_URL": database_url,
            "TENZO_BROKER_URL": amqp_url,
            "TENZO_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
            "TENZO_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
            "TENZO_WEBHOOK_CA_BUNDLE": receiver.ca_file,
            "TENZO_METRICS_PORT": str(metrics_port),
        }
        application = build_application(Settings.from_env(env))
        base = f"https://localhost:{receiver.port}"
        orgs = dispatch.populate(
            application,
            args.contention_orgs + 1,
            lambda i: f"{base}/slow/{args.busy_ms}/hooks/0" if i == 0 else f"{base}/hooks/{i}",
        )
        dispatcher = subprocess.Popen([TENZO, "dispatcher"], env={**os.environ, **env})
        time.sleep(5)  # the dispatcher builds its projection from the event store
        dispatch.wait_for_projection(database_url, application)
        recorded = dispatch.Recorded([metrics_port])
        recorded.reset()

        print(f"dispatcher: {args.busy_interviews} interviews to a {args.busy_ms} ms endpoint …")
        publisher = dispatch.Publisher(amqp_url)
        started = time.time()
        ids = {publisher.publish(orgs[0]) for _ in range(args.busy_interviews)}
        ended = recorded.waiter(receiver.receipts)(ids, started)
        publisher.close()
        busy = len(ids) / (ended - started)
        print(f"  {busy:.2f} deliveries/s")

        fast = orgs[1:]
        count = os.cpu_count() or 1
        pairs: list[tuple[float, float]] = []
        for index in range(args.contention_pairs):
            # Alternating order (alone first, then hogs first): the shared machine's
            # drift cancels out in the median of the pairs' ratios.
            rates = {}
            for hogged in (False, True) if index % 2 == 0 else (True, False):
                if hogged:
                    hogs = [
                        subprocess.Popen([sys.executable, "-c", "while True: pass"])
                        for _ in range(count)
                    ]
                rates[hogged] = dispatch.throughput_run(
                    amqp_url,
                    fast,
                    args.contention_messages,
                    receiver.receipts,
                    recorded.waiter(receiver.receipts),
                )["per_second"]
                stop(hogs)
                hogs = []
            pairs.append((rates[False], rates[True]))
            print(f"  alone {rates[False]:.0f}/s, with {count} CPU hogs {rates[True]:.0f}/s")
        return DispatchFigures(
            args.busy_interviews, args.busy_ms, busy, args.contention_messages, pairs, count
        )
    finally:
        stop(hogs)
        if dispatcher is not None:
            dispatcher.send_signal(signal.SIGTERM)
            try:
                dispatcher.wait(20)
            except subprocess.TimeoutExpired:
                dispatcher.kill()
        if application is not None:
            application.close()
        receiver.process.kill()
        dispatch.drop_vhost(vhost)
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.kill()
        process.wait()


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- report -------------------------------------------------------------------------------


def met(passed: bool) -> str:
    return "yes" if passed else "**no**"


def render(
    args: Any, sizes: list[Figures], dispatched: DispatchFigures | None, load: tuple[float, float]
) -> str:
    last = sizes[-1]
    header = "| figure | " + " | ".join(f"{f.size:,} events" for f in sizes) + " | target | met |"
    rule = "|---|" + "---|" * len(sizes) + "---|---|"

    def row(
        name: str, values: list[str], target: str = "", passed: bool | str | None = None
    ) -> str:
        verdict = passed if isinstance(passed, str) else "" if passed is None else met(passed)
        return f"| {name} | " + " | ".join(values) + f" | {target} | {verdict} |"

    rows = [
        row(
            "growth through the application, events/s (events written)",
            [f"{f.grow_per_second:,.0f} ({f.grown:,})" if f.grown else "—" for f in sizes],
        ),
    ]
    caught = [f.catch_up_per_second for f in sizes if f.catch_up_per_second is not None]
    for name in LISTS:
        rows.append(
            row(
                f"p50 ms, {name}",
                [f"{f.lists[name]:.1f}" for f in sizes],
                f"≤ {LIST_P50_MS:.0f}",
                last.lists[name] <= LIST_P50_MS,
            )
        )
    rows += [
        row(
            "export, events/s (events exported)",
            [f"{f.export_per_second:,.0f} ({f.export_events:,})" for f in sizes],
        ),
        row(
            "catalog catch-up, events/s (the read-your-writes backlog, held back, in s)",
            [f.catch_up_text() for f in sizes],
            f"≥ {CATCH_UP_PER_SECOND:,.0f}",
            met(bool(caught) and caught[-1] >= CATCH_UP_PER_SECOND),
        ),
        row(
            f"small organization's first history page after {args.big_writes:,} writes "
            "of a big one, ms",
            [f"{f.small_read_ms:.0f}" for f in sizes],
            f"≤ {SMALL_READ_MS:.0f}",
            last.small_read_ms <= SMALL_READ_MS,
        ),
        row(
            f"own write seen after a {args.backlog:,}-event backlog (history / /v1/jobs), "
            "ms for both reads",
            [
                f"{'yes' if f.own_in_history else 'no'} / {'yes' if f.own_in_jobs else 'no'}, "
                f"{f.own_read_ms:.0f}"
                for f in sizes
            ],
            "always",
            all(f.own_in_history and f.own_in_jobs for f in sizes),
        ),
        row("`tenzo projections rebuild`, s", [f"{f.rebuild_seconds:.1f}" for f in sizes]),
        row(
            "`tenzo projections rebuild`, peak RSS MB",
            [f"{f.rebuild_rss_mb:.0f}" for f in sizes],
            f"≤ {REBUILD_RSS_MB:.0f}",
            last.rebuild_rss_mb <= REBUILD_RSS_MB,
        ),
    ]
    lines = [
        "## Flat at scale: lists, filters, the catalog and a rebuild as the store grows",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {dispatch.machine()}; load "
        f"average {load[0]:.1f} before, {load[1]:.1f} after (the machine is shared).",
        "",
        f"Reproduce: `{' '.join([COMMAND, *sys.argv[1:]])}` (PostgreSQL from "
        "`TENZO_BENCH_POSTGRES_URL`, RabbitMQ from `TENZO_BENCH_AMQP_URL`; the 1M size "
        "takes a while: `--sizes 10000,100000,1000000` is the default).",
        "",
        "Set-up: a fresh PostgreSQL database grown through the application "
        f"(`DeveloperTools.save`, {UNITS_PER_SAVE * EVENTS_PER_UNIT:,} events per "
        "transaction: jobs, 4 candidates each, deliveries succeeded, failed and pending) "
        f"over {args.orgs} organizations, {args.measured_share:.0%} of it in the measured "
        f"one, which also holds {args.keys:,} API keys; reads through the API as "
        "`tenzo api` builds it (Flask test client, in the benchmark's process), p50 of "
        f"{args.repeats} reads after a warm-up read. A 503 is retried after its "
        f"Retry-After (at most {RETRY_AFTER_CAP} s), the wait counted. Catch-up: the "
        "catalog's backlog when the growth stopped over the time until a read sees the "
        "newest event. After each size's lists, a big organization writes "
        f"{args.big_writes:,} events and a small one reads its first history page; then "
        f"the big one writes {args.backlog:,} more, the measured one `POST /v1/jobs` and "
        "reads the job back by aggregate id and in `/v1/jobs` (read-your-writes). "
        "Targets (issue 14) are checked at the largest size measured "
        f"({last.size:,} events).",
        "",
        header,
        rule,
        *rows,
    ]
    if dispatched is not None:
        lines += [
            "",
            "Dispatcher (one `tenzo dispatcher` process, no relay, a database of its own, "
            "bench/dispatch.py's HTTPS receiver):",
            "",
            "| run | measured | target | met |",
            "|---|---|---|---|",
            f"| one organization, endpoint answering 200 after {dispatched.busy_ms} ms, "
            f"{dispatched.busy_messages} interviews, deliveries/s | "
            f"{dispatched.busy_per_second:.2f} | ≥ {BUSY_PER_SECOND:.0f} | "
            f"{met(dispatched.busy_per_second >= BUSY_PER_SECOND)} |",
            f"| {args.contention_orgs} organizations, {dispatched.contention_messages:,} "
            "messages, deliveries/s alone (each pair) | "
            f"{', '.join(f'{alone:.0f}' for alone, _ in dispatched.pairs)} | | |",
            f"| the same beside {dispatched.hogs} CPU-burning processes (one per core) | "
            f"{', '.join(f'{hogged:.0f}' for _, hogged in dispatched.pairs)} (median ratio "
            f"{dispatched.ratio:.2f} of alone) | proportional, no collapse | |",
        ]
    return "\n".join(lines)


# -- main ---------------------------------------------------------------------------------


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = sorted(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("sizes are whole numbers, comma-separated") from None
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError("one or more sizes >= 1")
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=parse_sizes, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--orgs", type=int, default=100, help="organizations of the growth")
    parser.add_argument("--measured-share", type=float, default=0.1)
    parser.add_argument("--keys", type=int, default=1000, help="API keys of the measured org")
    parser.add_argument("--repeats", type=int, default=20, help="reads per list (p50)")
    parser.add_argument("--big-writes", type=int, default=20_000)
    parser.add_argument("--backlog", type=int, default=60_000)
    parser.add_argument("--busy-interviews", type=int, default=60)
    parser.add_argument("--busy-ms", type=int, default=1500)
    parser.add_argument("--contention-orgs", type=int, default=50)
    parser.add_argument("--contention-messages", type=int, default=2000)
    parser.add_argument(
        "--contention-pairs", type=int, default=2, help="alone / beside CPU hogs, alternating"
    )
    parser.add_argument("--no-dispatch", action="store_true", help="skip the dispatcher runs")
    parser.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    parser.add_argument("--keep", action="store_true", help="keep the grown database")
    args = parser.parse_args()

    from services.api.app import create_app
    from services.bootstrap import build_api, build_application
    from services.settings import Settings

    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    load_before = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="tenzo-scale-"))
    database = f"tenzo_scale_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    database_url = urlunsplit(urlsplit(POSTGRES_URL)._replace(path="/" + database))
    env = {
        "TENZO_DATABASE_URL": database_url,
        "TENZO_BROKER_URL": f"filesystem://{workdir}/broker",
        "TENZO_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
        "TENZO_RATE_LIMIT_PER_SECOND": "1000000",
        "TENZO_RATE_LIMIT_BURST": "1000000",
    }
    api_services = application = None
    try:
        application = build_application(Settings.from_env(env))
        api_services = build_api(Settings.from_env(env), application)
        client = create_app(api_services).test_client()
        print(f"database {database}: {args.keys:,} API keys, {args.orgs} organizations …")
        store = build_store(application, client, database_url, args.keys, args.orgs)
        measured = [measure(store, size, args, env) for size in args.sizes]
        dispatched = None if args.no_dispatch else dispatch_runs(args, workdir)
    finally:
        if api_services is not None:
            api_services.close()
        if application is not None:
            application.close()  # stops a background catalog before its database goes
        if args.keep:
            print(f"kept the database: {database_url}")
        else:
            with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        shutil.rmtree(workdir, ignore_errors=True)

    report = render(args, measured, dispatched, (load_before, os.getloadavg()[0]))
    print(report)
    if not args.no_docs:
        dispatch.write_docs(report, markers=(START, END))


if __name__ == "__main__":
    main()
