"""What API-key authentication costs the Public API (issue 3's benchmark).

Starts the API as `tenzo api` does (gunicorn, 2 workers, the same app factory and
server settings) on a fresh PostgreSQL database holding 100,000 API keys, then drives
it from this process with a thread pool of keep-alive ``requests.Session``s, in
alternating rounds of

  (a) ``GET /v1/jobs/{id}`` with an API key: authentication (one indexed SELECT of
      the key's events), usage counting and the rate limit, then the handler;
  (b) the same handler without authentication, on a baseline route this script adds
      to the app it serves (``app_with_baseline``); the product has no such route.

It reports requests/s and p50/p99 latency of both, checks the targets (a/b >= 0.85,
p99(a) <= 2 x p99(b)) and that the usage counts in the admin API equal the requests
sent with the keys, exactly; then writes the figures into docs/benchmarks.md between
its markers. Run it with `make bench` or `.venv/bin/python bench/public_api.py`.

Each client thread uses a key of its own, and the server's per-key rate limit is
raised for the run (TENZO_RATE_LIMIT_PER_SECOND): the limiter still runs on every
request, it just does not refuse any.
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from domain import credentials  # noqa: E402
from domain.actors import OPERATOR, actor  # noqa: E402
from domain.api_keys import ApiKey  # noqa: E402
from services.bootstrap import build_application  # noqa: E402
from services.settings import Settings  # noqa: E402

if TYPE_CHECKING:
    from flask import Flask

DOCS = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- public_api:start -->", "<!-- public_api:end -->"
COMMAND = ".venv/bin/python bench/public_api.py"
BASELINE = "/bench-baseline/<uuid:org_id>/jobs/<uuid:job_id>"


@dataclass
class Round:
    mode: str
    requests: int
    errors: int
    seconds: float
    latencies: list[float]
    server_cpu: float = 0.0  # seconds of CPU used by the gunicorn workers
    client_cpu: float = 0.0  # seconds of CPU used by this (driving) process


def arguments(
    description: str, *, keys: int, seconds: float, rounds: int, rounds_of: str
) -> argparse.Namespace:
    """The command line of a benchmark driving an API server with API keys (this one,
    bench/embedded_server.py)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "TENZO_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--keys", type=int, default=keys, help="API keys in the store")
    parser.add_argument("--threads", type=int, default=16, help="client threads (sessions)")
    parser.add_argument("--seconds", type=float, default=seconds, help="length of one round")
    parser.add_argument("--rounds", type=int, default=rounds, help=f"rounds of each {rounds_of}")
    parser.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    return parser.parse_args()


def server_env(database: str, workdir: Path) -> dict[str, str]:
    """A server process's environment: none of ours but these, a fresh encryption key,
    and a rate limit that runs on every request but refuses none."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TENZO_")} | {
        "TENZO_DATABASE_URL": database,
        "TENZO_BROKER_URL": f"filesystem://{workdir}/broker",
        "TENZO_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
        "TENZO_RATE_LIMIT_PER_SECOND": "1000000",
        "TENZO_RATE_LIMIT_BURST": "1000000",
    }


def main() -> None:
    if sys.argv[1:] == ["serve"]:  # the server process start_server runs
        serve()
        return
    args = arguments(
        __doc__.split("\n\n")[0], keys=100_000, seconds=5.0, rounds=8, rounds_of="mode"
    )
    database, drop = fresh_database(args.postgres_url)
    workdir = Path(tempfile.mkdtemp(prefix="tenzo-bench-"))
    env = server_env(database, workdir) | {"TENZO_HTTP_PORT": str(free_port())}
    server = None
    try:
        org_id, admin_token, keys, job_id = populate(Settings.from_env(env), args)
        server = start_server(env, workdir)
        base = f"http://127.0.0.1:{env['TENZO_HTTP_PORT']}"
        authenticated = (
            f"{base}/v1/jobs/{job_id}",
            [{"Authorization": f"Bearer {k}"} for _, k in keys],
        )
        unauthenticated = (f"{base}/bench-baseline/{org_id}/jobs/{job_id}", [{}])

        sent_with_keys = 0
        print("warming up")
        sent_with_keys += drive("a", *authenticated, args.threads, 2.0, server.pid).requests
        drive("b", *unauthenticated, args.threads, 2.0, server.pid)
        rounds: list[Round] = []
        load_before = os.getloadavg()[0]
        for number in range(args.rounds):
            # Pairs of adjacent rounds, b-a then a-b: drifting background load and
            # order effects cancel out in the median of the pairs' ratios.
            pair = [("b", unauthenticated), ("a", authenticated)]
            for mode, target in pair if number % 2 == 0 else reversed(pair):
                result = drive(mode, *target, args.threads, args.seconds, server.pid)
                rounds.append(result)
                if mode == "a":
                    sent_with_keys += result.requests
                print(
                    f"round {number + 1} ({mode}): {result.requests / result.seconds:.0f} req/s, "
                    f"{result.errors} errors"
                )

        counted = usage_total(base, admin_token, keys, sent_with_keys)
        load = (load_before, os.getloadavg()[0])
        report = summarize(rounds, sent_with_keys, counted, args, load)
        print(report)
        if not args.no_docs:
            write_docs(report)
        failed = [line for line in report.splitlines() if "| no |" in line]
        if failed:
            sys.exit("targets missed:\n" + "\n".join(failed))
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        drop()


# -- set-up -----------------------------------------------------------------------------


def fresh_database(url: str):
    name = f"tenzo_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return urlunsplit(urlsplit(url)._replace(path="/" + name)), drop


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def populate(settings: Settings, args):
    """An organization, one key per client thread, ``args.keys`` keys in all, one job."""
    application = build_application(settings)
    try:
        organization, admin_token = application.create_organization("Benchmark", OPERATOR)
        by = actor("admin_token", None)
        keys = [
            application.create_api_key(organization.id, f"client {n}", None, by)
            for n in range(args.threads)
        ]
        keys = [(key.id, plaintext) for key, plaintext in keys]
        started = time.monotonic()
        filler = args.keys - len(keys)
        # Many aggregates per save: one transaction per batch.
        for first in range(0, filler, 2000):
            batch = []
            for _ in range(min(2000, filler - first)):
                minted = credentials.mint(credentials.API_KEY_PREFIX)
                batch.append(
                    ApiKey(
                        org_id=uuid.uuid4(),
                        name="filler",
                        key_hash=minted.hash,
                        key_hint=minted.hint,
                        expires_at=None,
                        actor=by,
                    )
                )
            application.save(*batch)
        print(f"{args.keys} API keys in the store ({time.monotonic() - started:.0f} s)")
        job, _ = application.upsert_job(organization.id, {"title": "Benchmark job"}, by)
        return organization.id, admin_token, keys, job.id
    finally:
        application.close()


def start_server(env: dict[str, str], workdir: Path) -> subprocess.Popen:
    """This script's ``serve`` in a process of its own: gunicorn's master, whose
    children are the 2 workers."""
    log = (workdir / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "serve"],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{env['TENZO_HTTP_PORT']}/healthz"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the server did not start; see {workdir / 'server.log'}")
        try:
            if len(worker_pids(server.pid)) == 2 and requests.get(url, timeout=5).ok:
                time.sleep(1.0)  # both workers are up; let them finish importing
                return server
        except requests.RequestException:
            pass
        time.sleep(0.2)
    sys.exit("the server did not answer within 60 s")


def serve() -> None:
    """What `tenzo api --workers 2` does (services/cli/main.py), serving
    ``app_with_baseline`` instead of ``services.api.wsgi:create()``."""
    from services.api.http_server import run_gunicorn
    from services.infrastructure.log_redaction import RedactCredentials
    from services.infrastructure.topology import prepare_broker

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactCredentials())
    settings = Settings.from_env()
    build_application(settings).close()  # create the tables once, before the workers fork
    prepare_broker(settings.broker_url)
    run_gunicorn(
        "bench.public_api:app_with_baseline()", f"{settings.http_host}:{settings.http_port}", 2
    )


def app_with_baseline() -> Flask:
    """The API's app, as ``services.api.wsgi:create()`` builds it, plus the baseline:
    the very handler of ``GET /v1/jobs/{id}`` (schema, response), minus
    ``require_api_key``, the organization taken from the path."""
    from flask import g

    from services.api import public
    from services.api.wsgi import create

    app = create()
    handler = public.get_job.__wrapped__  # the view under require_api_key

    def baseline(org_id: uuid.UUID, **kwargs: Any) -> Any:
        g.org_id, g.actor = org_id, actor("system")
        return handler(**kwargs)

    app.add_url_rule(BASELINE, "bench_baseline_get_job", baseline)
    return app


# -- load -------------------------------------------------------------------------------


def drive(
    mode: str, url: str, headers: list[dict[str, str]], threads: int, seconds: float, server: int
) -> Round:
    """``threads`` keep-alive sessions GET ``url`` as fast as answered, for ``seconds``."""
    start = threading.Barrier(threads + 1)
    stop = threading.Event()

    def client(n: int) -> tuple[int, int, list[float]]:
        session = requests.Session()
        own = headers[n % len(headers)]
        latencies, errors = [], 0
        start.wait()
        while not stop.is_set():
            began = time.perf_counter()
            response = session.get(url, headers=own)
            latencies.append(time.perf_counter() - began)
            errors += response.status_code != 200
        session.close()
        return len(latencies), errors, latencies

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(client, n) for n in range(threads)]
        start.wait()
        began, server_cpu, client_cpu = (
            time.perf_counter(),
            workers_cpu(server),
            time.process_time(),
        )
        time.sleep(seconds)
        stop.set()
        results = [future.result() for future in futures]
        elapsed = time.perf_counter() - began
        server_cpu = workers_cpu(server) - server_cpu
        client_cpu = time.process_time() - client_cpu
    return Round(
        mode,
        sum(r[0] for r in results),
        sum(r[1] for r in results),
        elapsed,
        [latency for r in results for latency in r[2]],
        server_cpu,
        client_cpu,
    )


def worker_pids(master: int) -> list[int]:
    """The gunicorn workers: the children of ``master``, from /proc."""
    return [pid for pid, _ in _children(master)]


def workers_cpu(master: int) -> float:
    """CPU seconds used so far by the gunicorn workers (children of ``master``), from /proc."""
    ticks = sum(int(fields[11]) + int(fields[12]) for _, fields in _children(master))
    return ticks / os.sysconf("SC_CLK_TCK")  # utime + stime


def _children(master: int) -> list[tuple[int, list[str]]]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:
            found.append((int(entry.name), fields))
    return found


def usage_total(base: str, admin_token: str, keys, expected: int) -> int:
    """The keys' usage counts in the admin API, once they add up (or after 5 s)."""
    deadline = time.monotonic() + 5
    while True:
        total = 0
        for key_id, _ in keys:
            shown = requests.get(
                f"{base}/admin/v1/api-keys/{key_id}",
                headers={"Authorization": f"Bearer {admin_token}"},
                timeout=10,
            )
            total += shown.json()["usage_count"]
        if total == expected or time.monotonic() > deadline:
            return total
        time.sleep(0.2)


# -- report -----------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summarize(rounds: list[Round], sent: int, counted: int, args, load: tuple[float, float]) -> str:
    figures = {}
    for mode in ("a", "b"):
        mine = [r for r in rounds if r.mode == mode]
        latencies = [latency for r in mine for latency in r.latencies]
        figures[mode] = {
            "rps": sum(r.requests for r in mine) / sum(r.seconds for r in mine),
            "rounds": [r.requests / r.seconds for r in mine],
            "p50": percentile(latencies, 0.50) * 1000,
            "p99": percentile(latencies, 0.99) * 1000,
            "requests": sum(r.requests for r in mine),
            "errors": sum(r.errors for r in mine),
            "server_us": sum(r.server_cpu for r in mine) / sum(r.requests for r in mine) * 1e6,
            "client_cores": sum(r.client_cpu for r in mine) / sum(r.seconds for r in mine),
        }
    a, b = figures["a"], figures["b"]
    pair_ratios = [x / y for x, y in zip(a["rounds"], b["rounds"], strict=True)]
    ratio = statistics.median(pair_ratios)
    p99_ratio = a["p99"] / b["p99"]

    def ok(passed: bool) -> str:
        return "yes" if passed else "no"

    def row(name: str, f) -> str:
        per_round = ", ".join(f"{value:.0f}" for value in f["rounds"])
        return (
            f"| {name} | {f['rps']:.0f} ({per_round}) | {f['p50']:.1f} | {f['p99']:.1f} | "
            f"{f['server_us']:.0f} | {f['client_cores']:.2f} | {f['requests']} | {f['errors']} |"
        )

    return "\n".join(
        [
            "## Public API: what API-key authentication costs",
            "",
            f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}.",
            "",
            f"Reproduce: `{COMMAND}` (or `make bench`; needs the PostgreSQL server of "
            "`TENZO_BENCH_POSTGRES_URL`, default `postgresql://postgres@127.0.0.1:5432/postgres`).",
            "",
            f"Set-up: the API served as `tenzo api --workers 2` serves it (gunicorn, gthread, "
            f"8 threads each; the benchmark's own process, for its baseline route) on a fresh "
            f"PostgreSQL database holding {args.keys:,} API keys; the load comes from a separate "
            f"process, {args.threads} threads each with a keep-alive `requests.Session` (one API "
            f"key per thread); after a 2 s warm-up of each mode, {args.rounds} pairs of "
            f"{args.seconds:.0f} s rounds, b then a, a then b, and so on. The client runs on "
            "the same machine and shares its 2 cores with the server and PostgreSQL; the "
            "machine is shared with other work too (load average "
            f"{load[0]:.1f} before, {load[1]:.1f} after), which moves req/s from round to "
            "round: the throughput ratio is therefore the median of the ratios of the "
            f"adjacent pairs (each pair: {', '.join(f'{r:.2f}' for r in pair_ratios)}; "
            f"all rounds pooled: {a['rps'] / b['rps']:.2f}).",
            "",
            "Per request, (a) checks the key's checksum, hashes it (SHA-256), asks PostgreSQL "
            "whether the key has events newer than the copy its process has decoded (one "
            "prepared, indexed `SELECT 1 … LIMIT 1`: a revoked key is refused on the very "
            "next request), counts the use in memory and takes a token from the key's "
            "bucket; then runs the handler, which reads the job's events. No catalog "
            "catch-up is on this path. (b) runs the same handler on a route the benchmark "
            "adds to the app it serves (`bench/public_api.py`'s `app_with_baseline`; the "
            "product has no such route).",
            "",
            "| mode | req/s (per round) | p50 ms | p99 ms | server CPU µs/request | "
            "client CPU (cores) | requests | non-200 |",
            "|---|---|---|---|---|---|---|---|",
            row("(a) `GET /v1/jobs/{id}` with an API key", a),
            row("(b) the same handler, no authentication", b),
            "",
            f"Authentication, usage counting and the rate limit add "
            f"{a['server_us'] - b['server_us']:.0f} µs of worker CPU per request "
            f"({(a['server_us'] - b['server_us']) / b['server_us']:.0%} of (b)'s "
            f"{b['server_us']:.0f} µs); worker CPU per request is the figure least moved by "
            "other load on the machine, req/s the most.",
            "",
            "| target | measured | met |",
            "|---|---|---|",
            f"| throughput a/b >= 0.85 (median of pairs) | {ratio:.2f} | {ok(ratio >= 0.85)} |",
            f"| p99(a) <= 2 x p99(b) | {p99_ratio:.2f} x | {ok(p99_ratio <= 2.0)} |",
            f"| usage_count (admin API) == requests sent with the keys | {counted} == {sent} | "
            f"{ok(counted == sent)} |",
            f"| no errors | {a['errors'] + b['errors']} non-200 | {ok(a['errors'] + b['errors'] == 0)} |",
        ]
    )


def machine() -> str:
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        model = found.group(1).strip() if found else model
    with psycopg.connect(
        os.environ.get("TENZO_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    ) as db:
        version = db.execute("SHOW server_version").fetchone()[0]
    return (
        f"{os.cpu_count()} CPUs (`nproc`), {model}, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, PostgreSQL {version}"
    )


def write_docs(report: str, start: str = START, end: str = END) -> None:
    """Replace a benchmark's section of docs/benchmarks.md (between its markers ``start``
    and ``end``; this one's by default), keeping the others."""
    section = f"{start}\n{report}\n{end}"
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    DOCS.write_text(text)
    print(f"wrote {DOCS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
