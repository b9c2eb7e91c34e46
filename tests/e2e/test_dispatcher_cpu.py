"""`tenzo dispatcher` processes with TENZO_DISPATCHER_CPU=auto confine their threads to
one CPU each (services/infrastructure/cpu_affinity.py): two dispatchers claim two
different CPUs; with every CPU claimed, one runs anywhere; unset, a dispatcher is free;
a CPU the process may not use stops it with a message."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from services.infrastructure.cpu_affinity import CLAIMS_DIRECTORY_NAME, claim_free_cpu
from tests.support.dispatching import ENCRYPTION_KEY
from tests.support.fault_runs import TENZO, TenzoProcess

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux and two CPUs or more",
)


def _env(tmp_path: Path, name: str, **extra: str) -> dict[str, str]:
    home = tmp_path / name
    home.mkdir()
    return {
        "PATH": os.environ.get("PATH", ""),
        "TMPDIR": str(tmp_path),  # where the dispatchers claim CPUs: this test's own
        "TENZO_DATABASE_URL": f"sqlite:///{home}/events.sqlite3",
        "TENZO_BROKER_URL": f"filesystem://{home}/broker",
        "TENZO_ENCRYPTION_KEY": ENCRYPTION_KEY,
        **extra,
    }


def _cpus_of_each_thread(pid: int) -> set[str]:
    cpus = set()
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        try:
            text = status.read_text()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        for line in text.splitlines():
            if line.startswith("Cpus_allowed_list:"):
                cpus.add(line.split(":", 1)[1].strip())
    return cpus


def test_two_dispatchers_run_each_on_a_cpu_of_its_own(tmp_path):
    auto = {"TENZO_DISPATCHER_CPU": "auto"}
    first = TenzoProcess("dispatcher", _env(tmp_path, "first", **auto), name="first")
    second = TenzoProcess("dispatcher", _env(tmp_path, "second", **auto), name="second")
    try:
        first.start()
        second.start()
        assert first.process is not None and second.process is not None
        first_cpus = _cpus_of_each_thread(first.process.pid)
        second_cpus = _cpus_of_each_thread(second.process.pid)
        assert len(first_cpus) == 1 and len(second_cpus) == 1  # every thread on one CPU
        assert first_cpus != second_cpus
        assert all(cpu.isdigit() for cpu in first_cpus | second_cpus)
        assert any("dispatcher threads run on CPU" in line for line in first.lines)
    finally:
        first.stop()
        second.stop()


def test_unset_or_with_every_cpu_claimed_a_dispatcher_runs_on_every_cpu_it_may_use(
    tmp_path,
):
    allowed = sorted(os.sched_getaffinity(0))
    claims = [claim_free_cpu(allowed, tmp_path / CLAIMS_DIRECTORY_NAME) for _ in allowed]
    unset = TenzoProcess("dispatcher", _env(tmp_path, "unset"), name="unset")
    crowded = TenzoProcess(
        "dispatcher", _env(tmp_path, "crowded", TENZO_DISPATCHER_CPU="auto"), name="crowded"
    )
    try:
        for dispatcher in (unset, crowded):
            dispatcher.start()
            assert dispatcher.process is not None
            threads = _cpus_of_each_thread(dispatcher.process.pid)
            assert len(threads) == 1
            (listed,) = threads
            assert _expand(listed) == allowed
        assert any("every CPU is claimed" in line for line in crowded.lines)
        assert not any("CPU" in line for line in unset.lines)
    finally:
        unset.stop()
        crowded.stop()
        for claim in claims:
            assert claim is not None
            claim.release()


def test_a_cpu_the_process_may_not_use_stops_it_with_a_message(tmp_path):
    run = subprocess.run(
        [TENZO, "dispatcher"],
        env=_env(tmp_path, "refused", TENZO_DISPATCHER_CPU="4096"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert "TENZO_DISPATCHER_CPU=4096: this process may run on CPUs" in run.stderr
    assert "Traceback" not in run.stderr


def _expand(listed: str) -> list[int]:
    """A kernel CPU list (``0-3,6``) as its CPUs."""
    cpus: list[int] = []
    for part in listed.split(","):
        low, _, high = part.partition("-")
        cpus += range(int(low), int(high or low) + 1)
    return cpus
