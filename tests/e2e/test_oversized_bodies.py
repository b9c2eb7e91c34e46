"""A body over 1 MiB is 413 and its connection is closed (SPEC 5), over a raw socket,
on `tenzo serve` (waitress) and `tenzo api` (gunicorn).

The rest of a refused body is never read, so the connection cannot carry another
request: the answer says ``Connection: close`` and the server closes it (gunicorn
used to say keep-alive and then drop it; waitress closes its sending side, then reads
what the client still sends for a while, so the client is not reset mid-answer).
"""

from __future__ import annotations

import contextlib
import socket
import threading

import pytest

from tests.conftest import OPERATOR_TOKEN
from tests.support.servers import *  # noqa: F403 - the server fixture
from tests.support.servers import Server

MIB = 1024 * 1024
SECONDS = 10


def chunked(body: bytes, size: int = 64 * 1024) -> bytes:
    frames = [
        b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size])
        for i in range(0, len(body), size)
    ]
    return b"".join(frames) + b"0\r\n\r\n"


def exchange(port: int, head: bytes, body: bytes) -> tuple[bytes, str]:
    """Send the request (from a thread: the server may stop reading it) and read until
    the server closes the connection; return what came back and how it ended."""
    with socket.create_connection(("127.0.0.1", port), timeout=SECONDS) as sock:

        def send() -> None:
            with contextlib.suppress(OSError):  # the server may close before reading it all
                sock.sendall(head + body)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
            ending = "closed"
        except TimeoutError:
            ending = "still open"
        except ConnectionResetError:
            ending = "reset"
        sender.join(SECONDS)
    return received, ending


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
def test_a_body_over_1_mib_is_413_and_the_connection_is_closed(
    server: Server, framing: str
) -> None:
    status, org = server.request("POST", "/admin/v1/organizations", OPERATOR_TOKEN, {"name": "Big"})
    assert status == 201, org
    payload = b'{"name": "' + b"x" * (2 * MIB) + b'"}'
    body = chunked(payload) if framing == "chunked" else payload
    length = (
        b"Transfer-Encoding: chunked"
        if framing == "chunked"
        else b"Content-Length: %d" % len(payload)
    )
    head = (
        b"POST /admin/v1/api-keys HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Authorization: Bearer " + org["admin_token"].encode() + b"\r\n"
        b"Content-Type: application/json\r\n" + length + b"\r\n\r\n"
    )

    received, ending = exchange(server.port, head, body)

    headers, _, answer = received.partition(b"\r\n\r\n")
    lines = headers.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 413"), received[:500]
    assert "Connection: close" in lines[1:], lines
    assert b"larger than the limit of 1 MiB" in answer
    assert ending == "closed", f"connection {ending} after the 413"
