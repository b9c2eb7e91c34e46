"""`tenzo serve` as a new user runs it: a real process on a free port, in a fresh folder.

Follows the README's curl walk-through over real HTTP, then restarts the process on
the same folder: no second demo organization, and everything persisted.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

TOKEN_LINE = re.compile(r"Admin token \(shown once, keep it\): (tenzo_admin_\w+)")
DASHBOARD_LINE = re.compile(r"Dashboard: (http://\S+)")
STARTUP_SECONDS = 60


def tenzo_executable() -> str:
    beside_python = Path(sys.prefix) / "bin" / "tenzo"
    found = str(beside_python) if beside_python.exists() else shutil.which("tenzo")
    assert found, "the tenzo console script is not installed (pip install -e .)"
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Serve:
    """One `tenzo serve` process; its stdout lines are collected as they come."""

    def __init__(self, folder: Path, port: int):
        env = {key: value for key, value in os.environ.items() if not key.startswith("TENZO_")}
        env |= {"TENZO_HTTP_PORT": str(port), "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [tenzo_executable(), "serve"],
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line)

    def wait_for_dashboard(self) -> str:
        """Read lines until the dashboard address is printed; return it."""
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                assert self.process.poll() is None, "".join(self.output)
                continue
            if match := DASHBOARD_LINE.search(line):
                return match.group(1)
        raise AssertionError("tenzo serve did not start:\n" + "".join(self.output))

    @property
    def admin_token(self) -> str | None:
        for line in self.output:
            if match := TOKEN_LINE.search(line):
                return match.group(1)
        return None

    def stop(self) -> int:
        """Interrupt the process as Ctrl-C does, and wait for it to exit."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
                raise AssertionError("tenzo serve did not stop on SIGINT") from None
        return self.process.returncode


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def started(folder: Path) -> Iterator[list[Serve]]:
    """The processes a test starts; each is stopped at the end, whatever happened."""
    processes: list[Serve] = []
    yield processes
    for process in processes:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait(timeout=10)


def call(method: str, url: str, token: str, **kwargs: Any) -> requests.Response:
    return requests.request(
        method, url, headers={"Authorization": f"Bearer {token}"}, timeout=10, **kwargs
    )


def test_make_run_then_the_readme_walk_through(folder: Path, started: list[Serve]) -> None:
    port = free_port()
    first = Serve(folder, port)
    started.append(first)
    dashboard = first.wait_for_dashboard()
    assert dashboard == f"http://127.0.0.1:{port}/"
    token = first.admin_token
    assert token, "".join(first.output)
    base = dashboard.rstrip("/")
    admin = f"{base}/admin/v1"

    key_file = folder / "var" / "encryption.key"
    assert key_file.exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert (folder / "var" / "tenzo.sqlite3").exists()

    assert requests.get(f"{base}/healthz", timeout=10).json() == {"status": "ok"}
    assert requests.get(f"{base}/readyz", timeout=10).status_code == 200
    docs = requests.get(f"{base}/docs", timeout=10)
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert requests.get(f"{base}/openapi.json", timeout=10).json()["openapi"].startswith("3.")

    # API keys: create -> list -> revoke.
    created = call("POST", f"{admin}/api-keys", token, json={"name": "Greenhouse sync"})
    assert created.status_code == 201, created.text
    key = created.json()
    assert key["key"].startswith("tenzo_pk_") and key["status"] == "active"
    listed = call("GET", f"{admin}/api-keys", token)
    assert [item["id"] for item in listed.json()["items"]] == [key["id"]]
    assert key["key"] not in listed.text
    revoked = call("POST", f"{admin}/api-keys/{key['id']}/revoke", token)
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"

    # Webhook: configure -> enable -> delete. example.com does not resolve offline,
    # which is accepted at configuration time.
    webhook_url = "https://example.com/webhooks/tenzo"
    configured = call(
        "PUT", f"{admin}/webhook", token, json={"url": webhook_url, "secret": "whsec-demo-1234"}
    )
    assert configured.status_code == 201, configured.text
    assert configured.json()["enabled"] is False and configured.json()["secret_set"] is True
    enabled = call("PATCH", f"{admin}/webhook", token, json={"enabled": True})
    assert enabled.status_code == 200 and enabled.json()["enabled"] is True
    assert call("DELETE", f"{admin}/webhook", token).status_code == 204
    gone = call("GET", f"{admin}/webhook", token)
    assert gone.status_code == 404
    assert gone.headers["Content-Type"] == "application/problem+json"

    # A refused URL over real HTTP: 422 problem+json.
    refused = call("PUT", f"{admin}/webhook", token, json={"url": "https://localhost/x"})
    assert refused.status_code == 422
    assert refused.headers["Content-Type"] == "application/problem+json"

    # The event history.
    history = call("GET", f"{admin}/events", token)
    assert history.status_code == 200
    types = [item["type"] for item in history.json()["items"]]
    assert types == [
        "OrganizationCreated",
        "AdminTokenIssued",
        "ApiKeyCreated",
        "ApiKeyRevoked",
        "WebhookConfigured",
        "WebhookEnabled",
        "WebhookDeleted",
    ]
    for secret in ("whsec-demo-1234", key["key"], token):
        assert secret not in history.text
    exported = call("GET", f"{admin}/events/export", token)
    assert exported.headers["Content-Type"].startswith("application/x-ndjson")
    assert [json.loads(line) for line in exported.text.splitlines()] == history.json()["items"]

    # The token never reached the log.
    assert first.stop() == 0
    log = "".join(first.output)
    assert log.count(token) == 1  # the first-start line only
    assert key["key"] not in log

    # Restart on the same folder: no new demo organization, everything persisted.
    second = Serve(folder, port)
    started.append(second)
    second.wait_for_dashboard()
    assert second.admin_token is None
    assert "demo organization" not in "".join(second.output).lower()
    again = call("GET", f"{admin}/api-keys", token)
    assert again.status_code == 200
    assert [(item["id"], item["status"]) for item in again.json()["items"]] == [
        (key["id"], "revoked")
    ]
    after_restart = call("GET", f"{admin}/events", token).json()["items"]
    assert after_restart == history.json()["items"]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert second.stop() == 0

    # Across both runs, one organization exists in the store.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENZO_")}
    printed = subprocess.run(
        [tenzo_executable(), "events"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    every_type = [json.loads(line)["type"] for line in printed.splitlines()]
    assert every_type.count("OrganizationCreated") == 1
