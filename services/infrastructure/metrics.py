"""Serving Prometheus metrics: the exposition of /metrics, and prometheus-client's
multiprocess mode for `tenzo api`'s gunicorn workers.

Each process defines only the metrics it owns, in its own folder (services/api/metrics.py,
services/relay/metrics.py, services/dispatcher/metrics.py), and imports only its own: a
process exports what it counts, and no zeros for what another process counts.

Under gunicorn every worker is a process of its own, and a scrape reaches one of them;
in multiprocess mode each worker writes its values to files in one folder
(``PROMETHEUS_MULTIPROC_DIR``, prometheus-client's own variable) and /metrics adds up
the files of every worker, so counters are one view that never goes backwards.
prometheus-client chooses where values live when it is first imported, so the folder is
named in the environment before then: ``share_between_processes`` is called by the
gunicorn launcher (services/api/http_server.py) before anything imports it, and its
workers, forked afterwards, inherit the choice.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


class SharedMetricsFolder:
    """The folder where a group of processes writes its metrics: a fresh temporary one,
    removed by ``remove``, or the one named by ``PROMETHEUS_MULTIPROC_DIR``, emptied at
    the start and kept."""

    def __init__(self, path: Path, owned: bool) -> None:
        self.path = path
        self.owned = owned

    def remove(self) -> None:
        if self.owned:
            shutil.rmtree(self.path, ignore_errors=True)


def share_between_processes() -> SharedMetricsFolder:
    """Put this process and those it starts in multiprocess mode, on a folder holding
    no values of an earlier run. Call it before prometheus-client is imported."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError(
            "prometheus_client was imported before the metrics folder was chosen: "
            "the workers would each count on their own"
        )
    given = os.environ.get(MULTIPROCESS_DIR)
    if given:
        folder = SharedMetricsFolder(Path(given), owned=False)
        folder.path.mkdir(parents=True, exist_ok=True)
        for stale in folder.path.glob("*.db"):  # an earlier run's values
            stale.unlink()
    else:
        folder = SharedMetricsFolder(Path(tempfile.mkdtemp(prefix="tenzo-metrics-")), owned=True)
    os.environ[MULTIPROCESS_DIR] = str(folder.path)
    return folder


def forget_process(pid: int) -> None:
    """A worker has exited: its live gauges stop counting (its counters stay)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def render() -> tuple[bytes, str]:
    """The exposition of this process, or of every process of the group in
    multiprocess mode."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    folder = os.environ.get(MULTIPROCESS_DIR)
    if folder:
        registry = CollectorRegistry()
        registry.register(_GroupValues(Path(folder)))
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


class _GroupValues:
    """prometheus-client's multiprocess collector, less the files not written yet.

    A process creates its values file empty and sizes it a moment later; a scrape by
    another worker in between fails as a whole on that file (prometheus/client_python
    #1199), and forever if the process was killed in between. An empty file holds no
    values, so it is skipped.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def collect(self) -> Any:
        from prometheus_client.multiprocess import MultiProcessCollector

        return MultiProcessCollector.merge(  # type: ignore[no-untyped-call]
            [str(path) for path in self.folder.glob("*.db") if _has_values(path)],
            accumulate=True,
        )


def _has_values(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:  # a live gauge's file, removed as its process ended
        return False
