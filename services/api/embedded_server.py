"""`tenzo serve`'s HTTP server: waitress, a production-grade threaded WSGI server, with a
graceful stop.

``EmbeddedServer.stop`` (from a signal handler or another thread) makes
``serve_until_stopped`` stop accepting connections (the port refuses new ones), let the
requests already received finish and their answers be written, for at most
``drain_seconds``, then close every connection and return; the caller then closes what
the app was built with.

waitress reads a request's whole body before the app sees it. A body far over the API's
limit (SPEC 5: 413; ``REFUSED_UNREAD_BYTES``) it refuses itself, without reading the
rest, as problem+json in the app's words, and closes that connection gracefully: its
sending side first, then reading what the client still sends for a while (a lingering
close: closing with unread data would reset the connection, and the client could lose
the answer). It writes no access log: a middleware logs each answer as gunicorn does in
`tenzo api`, the path without its query string and with credentials masked
(services/infrastructure/log_redaction.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, WSGITask
from waitress.utilities import RequestEntityTooLarge

from contracts.problem import PROBLEM_CONTENT_TYPE
from services.api import problem_types
from services.api.app import MAX_BODY_BYTES
from services.infrastructure.log_redaction import redact_path

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger("tenzo.http")

THREADS = 8  # requests served at once, as one gunicorn worker of `tenzo api` serves
POLL_SECONDS = 0.2  # how soon the loop notices a stop
# waitress counts a chunked body's framing too: bodies up to twice the API's limit are
# read whole and the app refuses those over it (the connection goes on); waitress
# refuses larger ones itself, unread.
REFUSED_UNREAD_BYTES = 2 * MAX_BODY_BYTES
LINGER_SECONDS = 5.0  # how long a refused request's connection reads what still comes


class EmbeddedServer:
    """waitress serving ``app`` on ``host``:``port`` (0: any free port) until stopped."""

    def __init__(
        self, app: WSGIApplication, host: str, port: int, *, drain_seconds: float = 10.0
    ) -> None:
        self.drain_seconds = drain_seconds
        self._sockets: dict[int, Any] = {}  # waitress's socket map: ours, not a global one
        self._stopping = threading.Event()
        self._server = _EmbeddedWSGIServer(
            AccessLog(app),
            map=self._sockets,
            host=host,
            port=port,
            threads=THREADS,
            max_request_body_size=REFUSED_UNREAD_BYTES,
            asyncore_use_poll=True,  # no limit on file descriptor numbers, unlike select
            ident="tenzo",
        )
        # A queue of requests waiting for a thread is the normal state under load.
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    def serve_until_stopped(self) -> None:
        """Serve until ``stop``; then drain (see the module) and close."""
        try:
            while not self._stopping.is_set():
                self._poll(POLL_SECONDS)
                _LingeringClose.end_expired()
            self._drain()
        finally:
            self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
            wasyncore.close_all(self._sockets)

    def stop(self) -> None:
        """Ask ``serve_until_stopped`` to finish; safe in a signal handler."""
        self._stopping.set()

    def _drain(self) -> None:
        # Close the listening socket alone: the server's own close would also close the
        # trigger the request threads wake the loop with.
        self._poll(0)  # take what has arrived: a request begun before the stop is in progress
        wasyncore.dispatcher.close(self._server)
        deadline = time.monotonic() + self.drain_seconds
        self._poll(0)
        while True:
            self._close_idle_connections()  # a kept-alive connection takes no new request
            if not self._busy() or time.monotonic() >= deadline:
                return
            self._poll(0.05)

    def _close_idle_connections(self) -> None:
        for channel in list(self._sockets.values()):
            if isinstance(channel, HTTPChannel) and not self._serving(channel):
                channel.will_close = True  # waitress closes it on the loop's next turn

    def _busy(self) -> bool:
        """A connection is reading a request, has one waiting or being served, or has
        an answer still to write (or is to be closed)."""
        return any(
            channel.writable() or (isinstance(channel, HTTPChannel) and self._serving(channel))
            for channel in list(self._sockets.values())
        )

    @staticmethod
    def _serving(channel: HTTPChannel) -> bool:
        return bool(
            channel.request is not None
            or channel.requests
            or channel.total_outbufs_len
            or _unread_bytes(channel.socket)
        )

    def _poll(self, timeout: float) -> None:
        wasyncore.loop(timeout=timeout, map=self._sockets, use_poll=True, count=1)


def _unread_bytes(sock: socket.socket) -> bool:
    """The client has sent bytes waitress has not read yet (it reads nothing while it
    finishes the connection's previous answer): a request has begun, the connection is
    not idle. Closing it now would answer the client with a reset."""
    try:
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except OSError:  # nothing waiting (BlockingIOError), or the connection is gone
        return False


class AccessLog:
    """WSGI middleware: one log line per answer, as `tenzo api`'s gunicorn writes it
    (services/api/http_server.py), the path masked by ``redact_path``."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            log.info(
                '%s "%s %s %s" %s',
                environ.get("REMOTE_ADDR", "-"),
                redact_path(environ.get("REQUEST_METHOD", "-")),
                redact_path(environ.get("REQUEST_URI") or environ.get("PATH_INFO", "")),
                environ.get("SERVER_PROTOCOL", "-"),
                status.split(" ", 1)[0],
            )
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


class _ProblemErrorTask(ErrorTask):  # type: ignore[misc]
    """waitress's answer to a request it refuses itself (malformed, a body over the
    limit), as problem+json; the connection closes after it, as waitress's own does."""

    def execute(self) -> None:
        error = self.request.error
        problem_type = "about:blank"
        if isinstance(error, RequestEntityTooLarge):
            problem_type = problem_types.CONTENT_TOO_LARGE.uri
            title = "Content Too Large"
            detail = f"The request body is larger than the limit of {MAX_BODY_BYTES / 2**20:g} MiB."
        else:
            title, detail = error.reason, str(error.body)
        request = self.request  # a malformed request line leaves fields unset
        log.info(
            '%s "%s %s HTTP/%s" %s',
            self.channel.addr[0] if self.channel.addr else "-",
            redact_path(getattr(request, "command", None) or "-"),
            redact_path(getattr(request, "path", None) or "-"),
            getattr(request, "version", None) or "-",
            error.code,
        )
        body = json.dumps(
            {"type": problem_type, "title": title, "status": error.code, "detail": detail}
        ).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", PROBLEM_CONTENT_TYPE))
        self.set_close_on_finish()
        self.channel.linger = True  # the request may not have been read to its end
        self.content_length = len(body)
        self.write(body)


class _HeaderSpellingTask(WSGITask):  # type: ignore[misc]
    """waitress's task for a request the app answers, its header names spelled as the
    app spells them: waitress capitalizes each word (``Www-Authenticate``,
    ``X-Ratelimit-Limit``), and the names are ours to keep (SPEC 5.3, as the README's
    walk-throughs show them)."""

    def build_response_header(self) -> bytes:
        spelled = {name.lower(): name for name, _ in self.response_headers}
        status, *lines = super().build_response_header().decode("latin-1").split("\r\n")
        for number, line in enumerate(lines):
            name, colon, value = line.partition(":")
            if colon:
                lines[number] = spelled.get(name.lower(), name) + colon + value
        return "\r\n".join([status, *lines]).encode("latin-1")


class _EmbeddedChannel(HTTPChannel):  # type: ignore[misc]
    task_class = _HeaderSpellingTask
    error_task_class = _ProblemErrorTask
    linger = False

    def handle_close(self) -> None:
        if not self.linger or not self.connected:
            super().handle_close()
            return
        lingering = self.socket.dup()  # keeps the connection open once waitress closes
        super().handle_close()
        _LingeringClose(lingering, self._map)


class _LingeringClose(wasyncore.dispatcher):  # type: ignore[misc]
    """A connection whose answer is written: its sending side is shut (the client reads
    the end of the answer), and what the client still sends is read and dropped until
    it hangs up or ``LINGER_SECONDS`` have passed."""

    lingering: ClassVar[set[_LingeringClose]] = set()  # the loop checks these, not every socket

    def __init__(self, sock: socket.socket, socket_map: dict[int, Any]) -> None:
        super().__init__(sock, map=socket_map)
        self.deadline = time.monotonic() + LINGER_SECONDS
        self.lingering.add(self)
        with contextlib.suppress(OSError):  # the client may be gone already
            sock.shutdown(socket.SHUT_WR)

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def handle_read(self) -> None:
        try:
            data = self.recv(65536)
        except OSError:
            data = b""
        if not data or time.monotonic() > self.deadline:
            self.close()

    def handle_close(self) -> None:  # the client hung up
        self.close()

    def close(self) -> None:
        self.lingering.discard(self)
        super().close()

    @classmethod
    def end_expired(cls) -> None:
        if not cls.lingering:
            return
        now = time.monotonic()
        for dispatcher in list(cls.lingering):
            if now > dispatcher.deadline:
                dispatcher.close()


class _EmbeddedWSGIServer(TcpWSGIServer):  # type: ignore[misc]
    channel_class = _EmbeddedChannel
