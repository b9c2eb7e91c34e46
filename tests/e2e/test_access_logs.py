"""A credential pasted into a URL never reaches a log line (SPEC 4, 11): real `tenzo serve`
(werkzeug's server) and `tenzo api` (gunicorn) processes, whose whole output is read.

API keys and admin tokens in a path are logged as their hint (``tenzo_pk_…a1B2``), also
when percent-encoded; other things that look like bearer secrets (a ``whsec_`` secret,
a long random token) as ``[redacted]``; query strings are never logged; nor is the
request line of a malformed request, which the servers' error logs would quote.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import OPERATOR_TOKEN
from tests.e2e.test_serve import free_port, tenzo_executable

WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
RANDOM_TOKEN = secrets.token_hex(32)  # as `openssl rand -hex 32` makes an operator token


class Server:
    """One `tenzo serve` or `tenzo api` process; its stdout and stderr go to ``log``."""

    def __init__(self, command: list[str], folder: Path, encryption_key: str):
        self.port = free_port()
        self.log = folder / "server.log"
        env = {key: value for key, value in os.environ.items() if not key.startswith("TENZO_")}
        env |= {
            "TENZO_DATABASE_URL": f"sqlite:///{folder}/events.sqlite3",
            "TENZO_BROKER_URL": f"filesystem://{folder}/broker",
            "TENZO_ENCRYPTION_KEY": encryption_key,
            "TENZO_OPERATOR_TOKEN": OPERATOR_TOKEN,
            "TENZO_HTTP_PORT": str(self.port),
            "PYTHONUNBUFFERED": "1",
        }
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                [tenzo_executable(), *command],
                cwd=folder,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if self.request("GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.2)

    def request(
        self, method: str, path: str, token: str | None = None, body: Any = None
    ) -> tuple[int, Any]:
        """One request, its path sent exactly as given (no client re-quoting)."""
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
            return response.status, json.loads(data) if data else None
        finally:
            connection.close()

    def raw(self, request_line: bytes) -> None:
        """Send one malformed request and read whatever comes back."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(request_line + b"\r\nHost: x\r\n\r\n")
            while sock.recv(65536):
                pass

    def stop(self) -> str:
        """Stop the process (as Ctrl-C or `docker stop` would); return everything it wrote."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.log.read_text()


@pytest.fixture(params=["serve", "api"])
def server(request: pytest.FixtureRequest, tmp_path: Path, encryption_key: str) -> Iterator[Server]:
    command = ["serve"] if request.param == "serve" else ["api", "--workers", "1"]
    running = Server(command, tmp_path, encryption_key)
    try:
        yield running
    finally:
        print(running.stop()[-6000:])  # pytest shows it when the test fails


def percent_encoded(text: str) -> str:
    """Every character percent-encoded: the same path to a server, not to a grep."""
    return "".join(f"%{byte:02X}" for byte in text.encode())


def test_credentials_in_paths_never_reach_a_log_line(server: Server) -> None:
    status, org = server.request(
        "POST", "/admin/v1/organizations", OPERATOR_TOKEN, {"name": "Log Ltd"}
    )
    assert status == 201, org
    admin = org["admin_token"]
    status, key = server.request("POST", "/admin/v1/api-keys", admin, {"name": "ats"})
    assert status == 201, key
    api_key = key["key"]

    pasted = [
        (f"/v1/jobs/{api_key}", api_key),
        (f"/admin/v1/api-keys/{admin}", admin),
        (f"/admin/v1/api-keys/{admin}/revoke", admin),
        (f"/v1/candidates/x{api_key}y", api_key),
        (f"/v1/jobs/{percent_encoded(api_key)}", api_key),
        (f"/v1/jobs/{api_key}?api_key={api_key}", api_key),
        (f"/admin/v1/webhook/{WEBHOOK_SECRET}", admin),
        (f"/admin/v1/organizations/{RANDOM_TOKEN}", admin),
    ]
    for path, token in pasted:
        status, _ = server.request("GET", path, token)
        assert status in (401, 404, 405), path
    server.raw(f"GET /v1/jobs/{api_key} not-a-version".encode())
    server.raw(f"GET /v1/jobs/{api_key}\x01 HTTP/1.1".encode())
    server.request("GET", "/healthz")

    log = server.stop()
    for secret in (api_key, admin, WEBHOOK_SECRET, RANDOM_TOKEN):
        assert secret not in log
        assert secret[-12:] not in log
    assert percent_encoded(api_key)[:60] not in log
    # The requests were logged, each credential as its hint or [redacted].
    assert f'"GET /v1/jobs/tenzo_pk_…{api_key[-4:]}' in log
    assert f"/admin/v1/api-keys/tenzo_admin_…{admin[-4:]}/revoke" in log
    assert "/admin/v1/webhook/whsec_[redacted]" in log
    assert "/admin/v1/organizations/[redacted]" in log
    assert "/healthz" in log
