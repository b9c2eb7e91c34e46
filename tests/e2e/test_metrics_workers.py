"""/metrics under `tenzo api --workers 2` is one view of both workers (SPEC 13): a real
gunicorn with two worker processes, scraped over fresh connections. Left alone, the
worker that just answered tends to take the next connection too, so the scrapes take
turns by pausing the other worker (SIGSTOP, then SIGCONT): each worker answers every
other scrape, and each answer must count every scrape before it.

Each process exports only the metrics it owns: the API process none of the relay's or
the dispatcher's; `tenzo serve`, which runs all three, exports them all.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.support.servers import Server

SCRAPES = 20
METRICS_ROUTE = re.compile(
    r'^tenzo_http_requests_total\{method="GET",route="/metrics",status="200"\} (\S+)$',
    re.MULTILINE,
)
NOT_THE_APIS = ("tenzo_relay_", "tenzo_projection_", "tenzo_webhook_", "tenzo_dead_lettered")


def scrape(server: Server) -> str:
    # A new connection each time: either worker may take it.
    response = requests.get(
        f"http://127.0.0.1:{server.port}/metrics", headers={"Connection": "close"}, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.text


def scrapes_counted(exposition: str) -> int:
    found = METRICS_ROUTE.search(exposition)
    return int(float(found.group(1))) if found else 0


def worker_pids(master: int) -> list[int]:
    """gunicorn's workers: the children of its master, from /proc."""
    deadline = time.monotonic() + 60
    while True:
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
            if int(fields[1]) == master:
                children.append(int(stat.parent.name))
        if len(children) >= 2:
            return sorted(children)
        assert time.monotonic() < deadline, f"two workers did not start: {children}"
        time.sleep(0.1)


@contextmanager
def paused(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def test_two_workers_counters_never_go_backwards(tmp_path: Path, encryption_key: str) -> None:
    # The run's multiprocess folder is made under TMPDIR: here, to be looked at.
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    server = Server(
        ["api", "--workers", "2"], tmp_path, encryption_key, extra_env={"TMPDIR": str(temporary)}
    )
    try:
        workers = worker_pids(server.process.pid)
        assert len(workers) == 2, workers
        seen = []
        for n in range(SCRAPES):
            with paused(workers[n % 2]):  # the other worker answers
                exposition = scrape(server)
            seen.append(scrapes_counted(exposition))
        # A scrape is counted once answered: the n-th sees the n - 1 before it.
        assert seen == sorted(seen), f"a counter went backwards: {seen}"
        assert seen == list(range(SCRAPES)), seen
        for prefix in NOT_THE_APIS:
            assert prefix not in exposition, f"the API process exports {prefix}…"
        assert "tenzo_usage_flushes_total" in exposition  # the API's own, also at 0
        (folder,) = temporary.glob("tenzo-metrics-*")  # the run's one folder, both workers'
        assert {path.name for path in folder.glob("counter_*.db")} == {
            f"counter_{pid}.db" for pid in workers
        }
    finally:
        log = server.stop()
    assert server.process.returncode == 0, log
    assert not list(temporary.glob("tenzo-metrics-*")), "the metrics folder outlived the run"


@pytest.mark.parametrize("folder", ["fresh", "named"])
def test_every_run_starts_from_zero(tmp_path: Path, encryption_key: str, folder: str) -> None:
    """A fresh temporary folder per run, or the one PROMETHEUS_MULTIPROC_DIR names,
    emptied at the start (and kept)."""
    named = tmp_path / "metrics"
    extra_env = {"PROMETHEUS_MULTIPROC_DIR": str(named)} if folder == "named" else {}
    for _ in range(2):
        server = Server(["api", "--workers", "2"], tmp_path, encryption_key, extra_env)
        try:
            assert scrapes_counted(scrape(server)) == 0
            assert scrapes_counted(scrape(server)) == 1
        finally:
            server.stop()
        if folder == "named":
            assert list(named.glob("counter_*.db")), "the named folder was not used"


def test_tenzo_serve_exports_the_metrics_of_all_three_parts(
    tmp_path: Path, encryption_key: str
) -> None:
    server = Server(["serve"], tmp_path, encryption_key)
    try:
        scrape(server)
        exposition = scrape(server)
    finally:
        server.stop()
    assert scrapes_counted(exposition) == 1
    for name in ("tenzo_relay_published_total", "tenzo_projection_lag_events"):
        assert f"\n{name} " in exposition, name
