"""Keeping a dispatcher's threads on one CPU (``TENZO_DISPATCHER_CPU``, docs/dispatcher.md).

A Python process runs one thread at a time (the interpreter lock), and a dispatcher's
threads pass that lock to each other dozens of times per delivery: at every TLS read
and write, zlib call and queue hand-off. When the thread that gets the lock sleeps on
another CPU, each pass is a cross-CPU wake-up, which virtual machines make expensive.
Confined to one CPU, the threads pass the lock without one (they give up only the
moments two of them could run C code that lets the lock go at once), and the other CPUs
are left to PostgreSQL, RabbitMQ and the other processes. Figures: docs/benchmarks.md,
"2026-12-07, late".

``auto`` claims a CPU no other dispatcher sharing the claims directory holds: one lock
file per CPU (``flock``), held for the life of the process and let go by the kernel
however it ends. When every CPU is claimed, the process runs anywhere. Dispatchers that
do not share the directory (separate containers) cannot see each other's claims and
could all take the same CPU; hence ``none`` is the default, and docker-compose.yml sets
``auto`` for its replicas, which share the directory as a volume. A number names a CPU.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from services.settings import ConfigurationError

log = logging.getLogger("tenzo.dispatcher")

AUTO = "auto"
NONE = "none"
CLAIMS_DIRECTORY_NAME = "tenzo-dispatcher-cpus"  # in the temporary directory


@dataclass
class CpuClaim:
    """The CPU a process runs on, and the lock file that claims it (kept open)."""

    cpu: int
    lock: int | None = None  # a file descriptor, open until released or the process ends

    def release(self) -> None:
        if self.lock is not None:
            os.close(self.lock)
            self.lock = None


def claims_directory() -> Path:
    return Path(tempfile.gettempdir()) / CLAIMS_DIRECTORY_NAME


def confine_to_one_cpu(choice: str, directory: Path | None = None) -> CpuClaim | None:
    """Confine this process to one CPU as ``choice`` says (``auto``, ``none`` or a CPU
    number); the claim, or None when the process is left free. Called before the process
    starts any thread: threads inherit the CPU."""
    if choice == NONE or not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    claim: CpuClaim | None
    if choice != AUTO:
        claim = CpuClaim(int(choice))
        if claim.cpu not in allowed:
            raise ConfigurationError(
                f"TENZO_DISPATCHER_CPU={claim.cpu}: this process may run on CPUs "
                f"{', '.join(map(str, allowed))} only"
            )
    elif (
        len(allowed) < 2
        or (claim := claim_free_cpu(allowed, directory or claims_directory())) is None
    ):
        return None  # nothing to choose between, or no CPU left to claim
    os.sched_setaffinity(0, {claim.cpu})
    log.info("dispatcher threads run on CPU %d (TENZO_DISPATCHER_CPU=%s)", claim.cpu, choice)
    return claim


def claim_free_cpu(allowed: list[int], directory: Path) -> CpuClaim | None:
    """The first of ``allowed`` (from the last: CPU 0 takes most interrupts) whose lock
    file no other process holds; None when all are held or cannot be opened."""
    import fcntl  # POSIX only; the caller has checked for sched_setaffinity

    try:
        directory.mkdir(parents=True, exist_ok=True)
        if directory.stat().st_uid == os.getuid():
            directory.chmod(0o1777)  # any user's dispatchers (the umask cut mkdir's mode)
    except OSError as error:
        log.warning("cannot claim a CPU in %s (%s): running on any", directory, error)
        return None
    unopened = []
    for cpu in reversed(allowed):
        path = directory / f"cpu-{cpu}.lock"
        try:
            lock = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        except OSError as error:
            unopened.append(f"{path}: {error.strerror}")
            continue
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # another process holds it
            os.close(lock)
            continue
        return CpuClaim(cpu, lock)
    if unopened:
        log.warning("cannot open CPU claims (%s): running on any", "; ".join(unopened))
    else:
        log.info("every CPU is claimed by another dispatcher: this one runs on any")
    return None
