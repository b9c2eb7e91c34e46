"""A real HTTPS webhook receiver on loopback, scripted per test.

It records every request (method, path, headers, raw body), every TLS connection and
the SNI name each one asked for, and answers with scripted responses: a status, a
body, a delay before answering, and optionally a trickle of N bytes per second; or,
once the script has run out, with what a ``respond`` function says for each request
(e.g. 500 to every first attempt, 200 to the others).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme

DEFAULT_HOSTNAMES = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class ScriptedResponse:
    """One answer. ``trickle_bytes_per_second`` slows the body (and, with
    ``trickle_headers``, the status line and headers too); ``stall_after_bytes`` sends
    that much of the body, then waits ``stall_seconds`` before the rest."""

    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    trickle_bytes_per_second: float | None = None
    trickle_headers: bool = False
    stall_after_bytes: int | None = None
    stall_seconds: float = 10.0


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]  # keys lower-cased
    body: bytes
    client_port: int


class HttpsReceiver:
    """A ThreadingHTTPServer wrapped in TLS on 127.0.0.1 with a certificate from a trustme CA.

    Use as a context manager; ``url`` points at ``/webhook`` by IP, ``url_for(host)`` by
    name, and ``ca_pem_path`` is the CA file a client must trust. Requests the script
    does not answer get ``respond(request)``, or 200 ``ok`` without it.
    """

    def __init__(
        self,
        responses: Iterable[ScriptedResponse] = (),
        *,
        ca: trustme.CA | None = None,
        directory: Path | str | None = None,
        hostnames: Iterable[str] = DEFAULT_HOSTNAMES,
        respond: Callable[[ReceivedRequest], ScriptedResponse] | None = None,
    ) -> None:
        self.ca = ca or trustme.CA()
        self.respond = respond
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        if directory is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="https-receiver-")
            directory = self._tempdir.name
        self.ca_pem_path = str(Path(directory) / "receiver-ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_pem_path)
        self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(*hostnames).configure_cert(self._tls)
        self._tls.sni_callback = self._record_sni
        self._script: deque[ScriptedResponse] = deque(responses)
        self._lock = threading.Lock()
        self.requests: list[ReceivedRequest] = []
        self.connections = 0
        self.in_flight = 0  # requests received and not answered yet
        self.most_in_flight = 0
        self.tls_failures: list[str] = []
        self.server_names: list[str | None] = []
        self._server = _TlsServer(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return self.url_for("127.0.0.1")

    def url_for(self, host: str, path: str = "/webhook") -> str:
        return f"https://{host}:{self.port}{path}"

    def script(self, *responses: ScriptedResponse) -> None:
        """Queue answers, used in order; once they run out every request gets 200 ``ok``."""
        with self._lock:
            self._script.extend(responses)

    def __enter__(self) -> HttpsReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        if self._tempdir is not None:
            self._tempdir.cleanup()

    # -- called from the server's threads --

    def _next_response(self, request: ReceivedRequest) -> ScriptedResponse:
        with self._lock:
            if self._script:
                return self._script.popleft()
        return self.respond(request) if self.respond is not None else ScriptedResponse()

    def _record(self, request: ReceivedRequest) -> None:
        with self._lock:
            self.requests.append(request)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)

    def _record_answered(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _record_connection(self) -> None:
        with self._lock:
            self.connections += 1

    def _record_tls_failure(self, reason: str) -> None:
        with self._lock:
            self.tls_failures.append(reason)

    def _record_sni(self, sock: Any, server_name: str | None, context: Any) -> None:
        with self._lock:
            self.server_names.append(server_name)


class _TlsServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, receiver: HttpsReceiver) -> None:
        self.receiver = receiver
        super().__init__(("127.0.0.1", 0), _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake happens here, in the connection's own thread, so a client
        # that never completes it cannot stall the accept loop.
        self.receiver._record_connection()
        try:
            tls = self.receiver._tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as error:
            self.receiver._record_tls_failure(str(error))
            return
        try:
            # OSError: the client went away, e.g. it gave up on a trickle.
            with contextlib.suppress(OSError):
                _Handler(tls, client_address, self)
            with contextlib.suppress(OSError):
                tls.shutdown(socket.SHUT_RDWR)
        finally:
            tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # failures are expected in these tests; they show up in the assertions


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse can be observed
    timeout = 10
    server: _TlsServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        receiver = self.server.receiver
        request = ReceivedRequest(
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            client_port=int(self.client_address[1]),
        )
        receiver._record(request)
        try:
            self._answer(receiver._next_response(request))
        finally:
            receiver._record_answered()

    do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = _handle

    def _answer(self, response: ScriptedResponse) -> None:
        if response.delay:
            time.sleep(response.delay)
        try:
            reason = HTTPStatus(response.status).phrase
        except ValueError:
            reason = "Scripted"
        headers = {"Content-Length": str(len(response.body)), "Content-Type": "text/plain"}
        headers.update(response.headers)
        head = f"HTTP/1.1 {response.status} {reason}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
        slow = response.trickle_bytes_per_second is not None or response.stall_after_bytes
        if slow:
            self.close_connection = True
        if response.trickle_bytes_per_second is not None:
            rate = response.trickle_bytes_per_second
            if response.trickle_headers:
                self._trickle(head.encode("latin-1") + response.body, rate)
            else:
                self.wfile.write(head.encode("latin-1"))
                self._trickle(response.body, rate)
        elif response.stall_after_bytes is not None:
            self.wfile.write(head.encode("latin-1") + response.body[: response.stall_after_bytes])
            time.sleep(response.stall_seconds)
            self.wfile.write(response.body[response.stall_after_bytes :])
        else:
            self.wfile.write(head.encode("latin-1") + response.body)

    def _trickle(self, data: bytes, bytes_per_second: float) -> None:
        for index in range(len(data)):
            self.wfile.write(data[index : index + 1])
            time.sleep(1 / bytes_per_second)
