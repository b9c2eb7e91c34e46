"""`tenzo serve`'s HTTP server: waitress (now) against werkzeug's development server (before).

Starts the same app, as `tenzo serve` builds it, under each server in a process of its
own (werkzeug as `tenzo serve` ran it until issue 15: threaded, a thread per connection,
an access line logged per request; waitress as services/api/embedded_server.py runs it),
on one fresh PostgreSQL database holding ``--keys`` API keys, both logging to a file.
Then drives them in alternating rounds from this process, as bench/public_api.py does
(keep-alive ``requests.Session`` per client thread, one API key each, ``GET
/v1/jobs/{id}``), and reports requests/s, p50/p99 latency and the server's CPU per
request; the throughput ratio is the median of adjacent pairs' ratios, because the
machine is shared. Writes the figures into docs/benchmarks.md between its markers.

Run it with `.venv/bin/python bench/embedded_server.py` (PostgreSQL from
TENZO_BENCH_POSTGRES_URL, as bench/public_api.py).
"""

from __future__ import annotations

import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.public_api import (  # noqa: E402
    Round,
    arguments,
    drive,
    free_port,
    fresh_database,
    machine,
    percentile,
    populate,
    server_env,
    write_docs,
)
from services.settings import Settings  # noqa: E402

SERVERS = ("werkzeug", "waitress")
HEALTHZ = "healthz"  # waitress's GET /healthz: the floor authenticated reads are held to
MODES = (*SERVERS, HEALTHZ)
START, END = "<!-- embedded_server:start -->", "<!-- embedded_server:end -->"
COMMAND = ".venv/bin/python bench/embedded_server.py"


def main() -> None:
    if sys.argv[1:2] == ["serve"]:  # a server process start_server runs
        serve(sys.argv[2])
        return
    args = arguments(
        __doc__.split("\n\n")[0], keys=10_000, seconds=4.0, rounds=4, rounds_of="server"
    )
    database, drop = fresh_database(args.postgres_url)
    workdir = Path(tempfile.mkdtemp(prefix="tenzo-bench-embedded-"))
    env = server_env(database, workdir)
    servers: dict[str, tuple[subprocess.Popen, int]] = {}
    try:
        _, _, keys, job_id = populate(Settings.from_env(env), args)
        for name in SERVERS:
            servers[name] = start_server(name, env, workdir)
        headers = [{"Authorization": f"Bearer {k}"} for _, k in keys]

        def run(name: str, seconds: float) -> Round:
            process, port = servers["waitress" if name == HEALTHZ else name]
            if name == HEALTHZ:
                url, sent = f"http://127.0.0.1:{port}/healthz", [{} for _ in headers]
            else:
                url, sent = f"http://127.0.0.1:{port}/v1/jobs/{job_id}", headers
            cpu = process_cpu(process.pid)
            result = drive(name, url, sent, args.threads, seconds, process.pid)
            result.server_cpu = process_cpu(process.pid) - cpu
            return result

        print("warming up")
        for name in MODES:
            run(name, 2.0)
        rounds: list[Round] = []
        load_before = os.getloadavg()[0]
        for number in range(args.rounds):
            order = MODES if number % 2 == 0 else tuple(reversed(MODES))
            for name in order:
                result = run(name, args.seconds)
                rounds.append(result)
                print(
                    f"round {number + 1} ({name}): {result.requests / result.seconds:.0f} req/s, "
                    f"{result.errors} errors"
                )
        report = summarize(rounds, args, (load_before, os.getloadavg()[0]))
        print(report)
        if not args.no_docs:
            write_section(report)
    finally:
        for process, _ in servers.values():
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        drop()


def start_server(name: str, env: dict[str, str], workdir: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    log = (workdir / f"{name}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "serve", name],
        cwd=workdir,
        env=env | {"TENZO_HTTP_PORT": str(port)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{name} did not start; see {workdir / (name + '.log')}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).ok:
                return process, port
        except requests.RequestException:
            pass
        time.sleep(0.2)
    sys.exit(f"{name} did not answer within 60 s")


def serve(name: str) -> None:
    """The app as `tenzo serve` builds it (without its relay and dispatcher threads),
    under ``name``'s server, until SIGTERM."""
    from services.api.app import create_app
    from services.bootstrap import build_api
    from services.infrastructure.log_redaction import RedactCredentials

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactCredentials())
    settings = Settings.from_env()
    api_services = build_api(settings)
    app = create_app(api_services)
    if name == "waitress":
        from services.api.embedded_server import EmbeddedServer

        server = EmbeddedServer(app, settings.http_host, settings.http_port)
        signal.signal(signal.SIGTERM, lambda *_: server.stop())
        server.serve_until_stopped()
    else:
        http = werkzeug_server(app, settings.http_host, settings.http_port)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            http.serve_forever()
        finally:
            http.server_close()
    api_services.close()


def werkzeug_server(app: Any, host: str, port: int) -> Any:
    """`tenzo serve`'s server before issue 15 (services/api/http_server.py's
    ``embedded_server`` then): werkzeug's threaded server, its request handler logging
    each request's masked path."""
    from werkzeug.serving import WSGIRequestHandler, make_server

    from services.infrastructure.log_redaction import redact_path

    log = logging.getLogger("tenzo.http")

    class PathOnlyRequestHandler(WSGIRequestHandler):
        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            log.info(
                '%s "%s %s" %s',
                self.address_string(),
                redact_path(self.command),
                redact_path(self.path),
                code,
            )

    return make_server(host, port, app, threaded=True, request_handler=PathOnlyRequestHandler)


def process_cpu(pid: int) -> float:
    """CPU seconds used so far by process ``pid`` (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summarize(rounds: list[Round], args: Any, load: tuple[float, float]) -> str:
    figures: dict[str, dict[str, Any]] = {}
    for name in MODES:
        mine = [r for r in rounds if r.mode == name]
        latencies = [latency for r in mine for latency in r.latencies]
        requests_sent = sum(r.requests for r in mine)
        figures[name] = {
            "rps": requests_sent / sum(r.seconds for r in mine),
            "rounds": [r.requests / r.seconds for r in mine],
            "p50": percentile(latencies, 0.50) * 1000,
            "p99": percentile(latencies, 0.99) * 1000,
            "server_us": sum(r.server_cpu for r in mine) / requests_sent * 1e6,
            "requests": requests_sent,
            "errors": sum(r.errors for r in mine),
        }
    before, after = figures["werkzeug"], figures["waitress"]
    pairs = [a / b for a, b in zip(after["rounds"], before["rounds"], strict=True)]
    ratio = statistics.median(pairs)
    floor = figures[HEALTHZ]
    auth_pairs = [a / h for a, h in zip(after["rounds"], floor["rounds"], strict=True)]
    auth_ratio = statistics.median(auth_pairs)

    def row(label: str, f: dict[str, Any]) -> str:
        per_round = ", ".join(f"{value:.0f}" for value in f["rounds"])
        return (
            f"| {label} | {f['rps']:.0f} ({per_round}) | {f['p50']:.1f} | {f['p99']:.1f} | "
            f"{f['server_us']:.0f} | {f['requests']} | {f['errors']} |"
        )

    met = "yes" if ratio >= 1.0 else "no"
    return "\n".join(
        [
            "## `tenzo serve`'s HTTP server: waitress against werkzeug's development server",
            "",
            f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}.",
            "",
            f"Reproduce: `{COMMAND}` (PostgreSQL from `TENZO_BENCH_POSTGRES_URL`, as above).",
            "",
            "Set-up: the app as `tenzo serve` builds it (without its relay and dispatcher "
            "threads), once under werkzeug's threaded server with the request handler "
            "`tenzo serve` used until issue 15, once under waitress as "
            "`services/api/embedded_server.py` runs it (8 threads), each in a process of "
            "its own logging every request to a file, on one fresh PostgreSQL database "
            f"holding {args.keys:,} API keys; {args.threads} client threads, each a "
            "keep-alive `requests.Session` with an API key of its own, `GET /v1/jobs/{id}`; "
            f"after a 2 s warm-up of each, {args.rounds} pairs of {args.seconds:.0f} s "
            "rounds in alternating order, and as many rounds of `GET /healthz` (no key) on the "
            "waitress process, the floor authenticated reads are held to. The machine is shared (load average "
            f"{load[0]:.1f} before, {load[1]:.1f} after): the ratio is the median of the "
            f"adjacent pairs' ratios (each pair: {', '.join(f'{r:.2f}' for r in pairs)}).",
            "",
            "| server | req/s (per round) | p50 ms | p99 ms | server CPU µs/request | "
            "requests | non-200 |",
            "|---|---|---|---|---|---|---|",
            row("werkzeug (before)", before),
            row("waitress (now)", after),
            row("waitress, `GET /healthz` (no key)", floor),
            "",
            "| target | measured | met |",
            "|---|---|---|",
            f"| waitress not slower: req/s ratio waitress/werkzeug >= 1.00 (median of pairs) "
            f"| {ratio:.2f} | {met} |",
            "| authenticated reads >= 0.70 of `/healthz` under waitress (median of pairs: "
            f"{', '.join(f'{r:.2f}' for r in auth_pairs)}) | {auth_ratio:.2f} | "
            f"{'yes' if auth_ratio >= 0.7 else 'no'} |",
            f"| no errors | {before['errors'] + after['errors']} non-200 | "
            f"{'yes' if before['errors'] + after['errors'] == 0 else 'no'} |",
        ]
    )


def write_section(report: str) -> None:
    write_docs(report, START, END)


if __name__ == "__main__":
    main()
