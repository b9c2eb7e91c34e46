"""`tenzo api` under gunicorn with two worker processes, on PostgreSQL (SPEC 2, 5.3).

A key revoked through one worker is refused by every worker on the next request (no
cache of key status anywhere), and the usage count, batched in each worker's memory,
adds up exactly in the admin API within 2 seconds.

Which worker served a request is read from /proc: the worker process holding the
server side of the request's TCP connection.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import OPERATOR_TOKEN

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        not Path("/proc/net/tcp").exists(), reason="reads Linux /proc to tell workers apart"
    ),
]

WORKERS = 2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def worker_pids(master: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                children.append(int(entry.name))
    return children


def serving_worker(connection: http.client.HTTPConnection, port: int, workers: list[int]) -> int:
    """The worker holding the server side of this (open) connection."""
    client_port = connection.sock.getsockname()[1]
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = (int(address.split(":")[1], 16) for address in fields[1:3])
        if local == port and remote == client_port:
            inodes.add(f"socket:[{fields[9]}]")
    for pid in workers:
        fds = Path(f"/proc/{pid}/fd")
        for fd in fds.iterdir():
            try:
                if os.readlink(fd) in inodes:
                    return pid
            except OSError:
                continue
    raise AssertionError(f"no worker holds the connection from port {client_port}")


class Server:
    def __init__(self, port: int, process: subprocess.Popen, log: Path):
        self.port, self.process, self.log = port, process, log

    def call(self, method: str, path: str, token: str | None = None, body=None):
        """One request on a new connection: (status, json body, serving worker)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            payload = None
            if body is not None:
                payload = json.dumps(body)
                headers["Content-Type"] = "application/json"
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            data = response.read()
            worker = serving_worker(connection, self.port, worker_pids(self.process.pid))
            return response.status, json.loads(data) if data else None, worker
        finally:
            connection.close()


@pytest.fixture
def server(postgres_url, tmp_path, encryption_key):
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("TENZO_")} | {
        "TENZO_DATABASE_URL": postgres_url,
        "TENZO_BROKER_URL": f"filesystem://{tmp_path}/broker",
        "TENZO_ENCRYPTION_KEY": encryption_key,
        "TENZO_OPERATOR_TOKEN": OPERATOR_TOKEN,
        "TENZO_HTTP_PORT": str(port),
    }
    log = tmp_path / "server.log"
    tenzo = Path(sys.executable).with_name("tenzo")
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(tenzo), "api", "--workers", str(WORKERS)],
            cwd=tmp_path,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    running = Server(port, process, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            if len(worker_pids(process.pid)) == WORKERS:
                try:
                    if running.call("GET", "/healthz")[0] == 200:
                        break
                except (OSError, AssertionError):
                    pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield running
    finally:
        print(log.read_text()[-6000:])  # pytest shows it when the test fails
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_revocation_through_one_worker_is_refused_by_every_worker(server):
    status, org, _ = server.call(
        "POST", "/admin/v1/organizations", OPERATOR_TOKEN, {"name": "Gunicorn Ltd"}
    )
    assert status == 201
    admin = org["admin_token"]
    status, key, _ = server.call("POST", "/admin/v1/api-keys", admin, {"name": "ats"})
    assert status == 201
    status, job, _ = server.call("POST", "/v1/jobs", key["key"], {"title": "Engineer"})
    assert status == 201
    succeeded = 1

    served_by = set()
    while len(served_by) < WORKERS or succeeded < 40:
        status, shown, worker = server.call("GET", f"/v1/jobs/{job['id']}", key["key"])
        assert status == 200 and shown["id"] == job["id"]
        succeeded += 1
        served_by.add(worker)
        assert succeeded < 400, "the requests never reached both workers"

    status, revoked, revoked_by = server.call(
        "POST", f"/admin/v1/api-keys/{key['id']}/revoke", admin
    )
    assert status == 200 and revoked["status"] == "revoked"

    refused_by: dict[int, int] = {}
    bodies = []
    while len(refused_by) < WORKERS or sum(refused_by.values()) < 20:
        status, body, worker = server.call("GET", f"/v1/jobs/{job['id']}", key["key"])
        assert status == 401, f"worker {worker} accepted a revoked key"
        refused_by[worker] = refused_by.get(worker, 0) + 1
        bodies.append(body)
        assert sum(refused_by.values()) < 400, "the requests never reached both workers"
    assert set(refused_by) == served_by and revoked_by in refused_by
    assert all(body == bodies[0] for body in bodies)

    deadline = time.monotonic() + 2.0
    while True:
        _, shown, _ = server.call("GET", f"/admin/v1/api-keys/{key['id']}", admin)
        if shown["usage_count"] == succeeded or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert shown["usage_count"] == succeeded
    last_used = datetime.fromisoformat(shown["last_used_at"])
    assert datetime.now(UTC) - last_used < timedelta(seconds=10)

    assert key["key"] not in server.log.read_text()


def test_a_key_rolled_through_one_worker_ends_in_every_worker(server):
    """SPEC 9: the old key of a roll works in every worker until its end, and is refused
    by every worker from the very next request after it (here: rolled again with 0 h)."""
    status, org, _ = server.call(
        "POST", "/admin/v1/organizations", OPERATOR_TOKEN, {"name": "Rolling Ltd"}
    )
    assert status == 201
    admin = org["admin_token"]
    status, old, _ = server.call("POST", "/admin/v1/api-keys", admin, {"name": "ats"})
    assert status == 201
    status, new, _ = server.call(
        "POST", f"/admin/v1/api-keys/{old['id']}/roll", admin, {"expires_in_hours": 1}
    )
    assert status == 201 and new["rolled_from"] == old["id"]

    served_by: dict[str, set[int]] = {"old": set(), "new": set()}
    for attempt in range(400):
        for which, key in (("old", old), ("new", new)):
            status, _, worker = server.call("GET", "/v1/jobs", key["key"])
            assert status == 200, f"worker {worker} refused the {which} key during the overlap"
            served_by[which].add(worker)
        if all(len(workers) == WORKERS for workers in served_by.values()) and attempt >= 10:
            break
    else:
        raise AssertionError("the requests never reached both workers")

    # Rolling the new key with no overlap ends it at once, in every worker.
    status, newest, _ = server.call(
        "POST", f"/admin/v1/api-keys/{new['id']}/roll", admin, {"expires_in_hours": 0}
    )
    assert status == 201
    refused_by: set[int] = set()
    for _ in range(400):
        status, body, worker = server.call("GET", "/v1/jobs", new["key"])
        assert status == 401 and "expired" in body["detail"], f"worker {worker} accepted it"
        refused_by.add(worker)
        if len(refused_by) == WORKERS:
            break
    assert refused_by == served_by["new"]
    assert server.call("GET", "/v1/jobs", newest["key"])[0] == 200
    assert server.call("GET", "/v1/jobs", old["key"])[0] == 200  # its own overlap goes on
