"""/metrics of a group of processes (`tenzo api --workers N`) reads every worker's values
file; one a worker has just created, still empty, must not fail the scrape
(prometheus/client_python#1199). Run in a fresh interpreter in multiprocess mode, as a
gunicorn worker is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRAPE = """
from prometheus_client import Counter
from services.infrastructure.metrics import render
Counter("tenzo_example", "an example").inc(3)
print(render()[0].decode())
"""


def test_an_empty_values_file_of_another_worker_does_not_fail_the_scrape(tmp_path: Path) -> None:
    (tmp_path / "counter_4242.db").touch()  # created, not sized yet: its worker is mid-start
    scraped = subprocess.run(
        [sys.executable, "-c", SCRAPE],
        env=os.environ | {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert scraped.returncode == 0, scraped.stderr
    assert "tenzo_example_total 3.0" in scraped.stdout
