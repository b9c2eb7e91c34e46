"""Fresh clone to a served `/healthz`: how long `make run` takes a new user.

Clones this repository (its committed HEAD, or --ref) into a temporary folder, runs
`make run` there on a free port, and times it until `GET /healthz` answers 200; then stops
the server (its process group) and removes the clone. --runs N repeats that, each from a
fresh clone; --ref lets a run compare with an older commit (e.g. the one before the lock
files) in alternation. The pip cache of the user running it is kept (a first run for a
new user also downloads every package). Prints one line per run and the medians.

    python3 bench/make_run.py --runs 3 --ref 67b810a
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
            return answer.status == 200
    except OSError:
        return False


def time_make_run(ref: str, limit: float) -> float:
    """Seconds from `make run` in a fresh clone of `ref` to /healthz 200."""
    with tempfile.TemporaryDirectory(prefix="tenzo-make-run-") as folder:
        clone = Path(folder) / "tenzo"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        subprocess.run(["git", "checkout", "-q", ref], cwd=clone, check=True)
        port = free_port()
        env = {name: value for name, value in os.environ.items() if not name.startswith("TENZO_")}
        env["TENZO_HTTP_PORT"] = str(port)
        log = (Path(folder) / "make-run.log").open("w")
        started = time.monotonic()
        make = subprocess.Popen(
            ["make", "run"],
            cwd=clone,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            while not healthy(port):
                if make.poll() is not None or time.monotonic() - started > limit:
                    raise SystemExit(f"make run did not serve: see {log.name}")
                time.sleep(0.2)
            return time.monotonic() - started
        finally:
            os.killpg(make.pid, signal.SIGTERM)
            make.wait(timeout=30)
            log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ref", help="also time this commit, alternating with HEAD")
    parser.add_argument("--limit", type=float, default=300, help="seconds before giving up")
    args = parser.parse_args()
    refs = ["HEAD", args.ref] if args.ref else ["HEAD"]
    times: dict[str, list[float]] = {ref: [] for ref in refs}
    for _ in range(args.runs):
        for ref in refs:
            seconds = time_make_run(ref, args.limit)
            times[ref].append(seconds)
            load = os.getloadavg()[0]
            print(f"{ref}: {seconds:.1f} s to /healthz 200 (load average {load:.1f})", flush=True)
    for ref, measured in times.items():
        print(f"{ref}: median {statistics.median(measured):.1f} s of {len(measured)} runs")


if __name__ == "__main__":
    main()
