"""`tenzo serve`'s waitress server as a real process: a graceful stop on SIGTERM (no new
connections, the request in progress answered, exit 0), and a port already in use
refused with a message naming TENZO_HTTP_PORT (by `tenzo api` too), before anything
is created.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import OPERATOR_TOKEN
from tests.e2e.test_serve import tenzo_executable
from tests.support.servers import Server

SECONDS = 20


def refuses_connections(port: int) -> bool:
    """Whether a new connection is turned away: refused, or reset during its handshake
    (the listening socket closed while the connection was arriving)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except (ConnectionRefusedError, ConnectionResetError):
        return True
    return False


def test_sigterm_answers_the_request_in_progress_and_takes_no_new_one(
    tmp_path: Path, encryption_key: str
) -> None:
    server = Server(["serve"], tmp_path, encryption_key)
    try:
        status, org = server.request(
            "POST", "/admin/v1/organizations", OPERATOR_TOKEN, {"name": "Drain"}
        )
        assert status == 201, org
        body = json.dumps({"name": "sent across the stop"}).encode()
        head = (
            b"POST /admin/v1/api-keys HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Authorization: Bearer " + org["admin_token"].encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=SECONDS)
        connection.request("GET", "/healthz")  # the server has taken this connection
        first = connection.getresponse()
        assert first.status == 200 and first.read()
        assert connection.sock is not None
        with connection.sock as sock:
            sock.sendall(head + body[:10])  # the next request in progress: part of its body

            server.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + SECONDS
            while not refuses_connections(server.port):
                assert time.monotonic() < deadline, "still accepting after SIGTERM"
                time.sleep(0.05)
            assert server.process.poll() is None, "stopped before the request was answered"

            sock.sendall(body[10:])
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        head_lines, _, answer = received.partition(b"\r\n\r\n")
        assert head_lines.startswith(b"HTTP/1.1 201"), received[:300]
        assert json.loads(answer)["name"] == "sent across the stop"
        assert server.process.wait(timeout=SECONDS) == 0
    finally:
        log = server.stop()
    assert "Traceback" not in log, log


@pytest.mark.parametrize("command", [["serve"], ["api", "--workers", "1"]])
def test_a_port_in_use_is_named_with_its_setting(tmp_path: Path, command: list[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {key: value for key, value in os.environ.items() if not key.startswith("TENZO_")}
        ran = subprocess.run(
            [tenzo_executable(), *command],
            cwd=tmp_path,
            env=env | {"TENZO_HTTP_PORT": str(port)},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert f"Port {port} is already in use" in ran.stderr
    assert "TENZO_HTTP_PORT" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert "Admin token" not in ran.stdout  # nothing was created: no token shown in vain


def test_header_names_are_sent_as_the_app_spells_them(tmp_path: Path, encryption_key: str) -> None:
    server = Server(["serve"], tmp_path, encryption_key)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=SECONDS)
        connection.request("GET", "/v1/jobs")
        response = connection.getresponse()
        response.read()
        connection.close()
    finally:
        server.stop()
    assert response.status == 401
    names = [name for name, _ in response.getheaders()]
    # waitress would send Www-Authenticate; SPEC 5.3 and the README spell it so.
    assert "WWW-Authenticate" in names, names
    assert "X-Content-Type-Options" in names, names
