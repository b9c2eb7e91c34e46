"""bench/scale.py runs end to end at a tiny size and reports every figure (not timed:
the figures' values are the benchmark's business, only their presence is checked)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.conftest import POSTGRES_URL, service_missing

ROOT = Path(__file__).resolve().parents[2]
NUMBER = r"[\d,]+(\.\d+)?"
FIGURES = {
    "p50 ms, history, unfiltered": NUMBER,
    "p50 ms, history ?type=": NUMBER,
    "p50 ms, history ?aggregate_id=": NUMBER,
    "p50 ms, /v1/jobs": NUMBER,
    "p50 ms, /v1/candidates?job_id=": NUMBER,
    "p50 ms, /admin/v1/deliveries?status=": NUMBER,
    "p50 ms, /admin/v1/api-keys": NUMBER,
    "export, events/s": NUMBER + r" \(" + NUMBER + r"\)",
    "catalog catch-up, events/s": (
        f"({NUMBER} \\({NUMBER} in {NUMBER} s\\)|— \\(backlog {NUMBER}\\))"
    ),
    "small organization's first history page": NUMBER,
    "own write seen after a": r"(yes|no) / (yes|no), " + NUMBER,
    "`tenzo projections rebuild`, s": NUMBER,
    "`tenzo projections rebuild`, peak RSS MB": NUMBER,
}


@pytest.mark.postgres
def test_scale_benchmark_reports_every_figure_and_drops_its_database() -> None:
    try:
        psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3).close()
    except psycopg.OperationalError:
        service_missing(f"PostgreSQL at {POSTGRES_URL}")

    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "scale.py"),
            "--sizes",
            "500",
            "--no-dispatch",
            "--no-docs",
            "--keys",
            "20",
            "--repeats",
            "3",
            "--big-writes",
            "100",
            "--backlog",
            "300",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith("TENZO_")}
        | {"TENZO_BENCH_POSTGRES_URL": POSTGRES_URL},
        cwd=ROOT,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    rows = [line for line in run.stdout.splitlines() if line.startswith("| ")]
    for label, value in FIGURES.items():
        found = [row for row in rows if row.startswith(f"| {label}")]
        assert found, f"no row {label!r} in:\n{run.stdout}"
        cells = [cell.strip() for cell in found[0].strip("|").split("|")]
        assert re.fullmatch(value, cells[1]), f"{label}: {cells[1]!r}"
    assert "Dispatcher" not in run.stdout  # --no-dispatch

    database = re.search(r"^database (tenzo_scale_\w+):", run.stdout, re.M)
    assert database, run.stdout
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        left = admin.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database.group(1),)
        ).fetchone()
    assert left is None, f"{database.group(1)} was not dropped"
