"""Keeping a dispatcher's threads on one CPU (``TENZO_DISPATCHER_CPU``, docs/dispatcher.md).

A Python process runs one thread at a time (the interpreter lock), and a dispatcher's
threads pass that lock to each other dozens of times per delivery: at every TLS read
and write, zlib call and queue hand-off. When the thread that gets the lock sleeps on
another CPU, each pass is a cross-CPU wake-up, which virtual machines make expensive.
Confined to one CPU, the threads pass the lock without one, and the other CPUs are left
to PostgreSQL, RabbitMQ and the other processes. Measured on this project's 2-CPU
machine (docs/benchmarks.md): one dispatcher delivered 25–40 % more per second, with
about 15 % less CPU per delivery.

``auto`` claims a CPU no other dispatcher on this machine has claimed: one lock file
per CPU (``flock``), held for the life of the process and let go by the kernel when it
ends, however it ends. When every CPU is claimed, the process is left free to run
anywhere. Dispatchers that do not share the directory (separate containers) do not see
each other's claims: share it (docker-compose.yml mounts a volume there for its
replicas), or give each its own CPUs (a cpuset), a number, or ``none``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from services.settings import ConfigurationError

log = logging.getLogger("tenzo.dispatcher")

AUTO = "auto"
NONE = "none"
CLAIMS_DIRECTORY_NAME = "tenzo-dispatcher-cpus"  # in the temporary directory


@dataclass
class CpuClaim:
    """The CPU a process runs on, and the lock file that claims it (kept open)."""

    cpu: int
    lock: IO[bytes] | None = None

    def release(self) -> None:
        if self.lock is not None:
            self.lock.close()
            self.lock = None


def claims_directory() -> Path:
    return Path(tempfile.gettempdir()) / CLAIMS_DIRECTORY_NAME


def confine_to_one_cpu(choice: str, directory: Path | None = None) -> CpuClaim | None:
    """Confine every thread of this process to one CPU as ``choice`` says (``auto``,
    ``none`` or a CPU number); the claim, or None when the process is left free."""
    if choice == NONE or not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if choice != AUTO:
        cpu = int(choice)
        if cpu not in allowed:
            raise ConfigurationError(
                f"TENZO_DISPATCHER_CPU={cpu}: this process may run on CPUs "
                f"{', '.join(map(str, allowed))} only"
            )
        claim: CpuClaim | None = CpuClaim(cpu)
    elif len(allowed) < 2:
        return None  # nothing to choose between
    else:
        claim = claim_free_cpu(allowed, directory or claims_directory())
        if claim is None:
            log.info("every CPU is claimed by another dispatcher: this one runs on any")
            return None
    assert claim is not None
    _set_affinity(claim.cpu)
    log.info("dispatcher threads run on CPU %d (TENZO_DISPATCHER_CPU=%s)", claim.cpu, choice)
    return claim


def claim_free_cpu(allowed: list[int], directory: Path) -> CpuClaim | None:
    """The first of ``allowed`` (from the last: CPU 0 takes most interrupts) whose lock
    file no other process holds; None when all are held or cannot be opened."""
    try:
        directory.mkdir(mode=0o1777, parents=True, exist_ok=True)
    except OSError as error:
        log.warning("cannot claim a CPU in %s (%s): running on any", directory, error)
        return None
    for cpu in reversed(allowed):
        try:
            lock = open(directory / f"cpu-{cpu}.lock", "ab")  # noqa: SIM115 - held open
        except OSError:
            continue
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # another process holds it
            lock.close()
            continue
        return CpuClaim(cpu, lock)
    return None


def _set_affinity(cpu: int) -> None:
    """Every thread of the process, including any a library has already started
    (threads started later inherit it)."""
    for task in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(task), {cpu})
        except ProcessLookupError:  # the thread has ended meanwhile
            continue
