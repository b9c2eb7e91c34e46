"""`tenzo serve` (waitress) and `tenzo api` (gunicorn) as real processes on
SQLite and the embedded broker in a folder of their own, their output kept in a file."""

from __future__ import annotations

import http.client
import json
import os
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

__all__ = ["COMMANDS", "Server", "server"]

COMMANDS = {"serve": ["serve"], "api": ["api", "--workers", "1"]}


class Server:
    """One `tenzo serve` or `tenzo api` process; its stdout and stderr go to ``log``."""

    def __init__(
        self,
        command: list[str],
        folder: Path,
        encryption_key: str,
        extra_env: dict[str, str] | None = None,
    ):
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
        } | (extra_env or {})
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
            # A server may take the line and keep the connection: ask it to close.
            sock.sendall(request_line + b"\r\nHost: x\r\nConnection: close\r\n\r\n")
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
    """Each test using this runs against `tenzo serve` and against `tenzo api`."""
    running = Server(COMMANDS[request.param], tmp_path, encryption_key)
    try:
        yield running
    finally:
        print(running.stop()[-6000:])  # pytest shows it when the test fails
