"""Serving the WSGI app: werkzeug's threaded server in `tenzo serve`, gunicorn in `tenzo api`.

A credential pasted into a URL must not reach a log line: both log paths without their
query strings and with credentials masked (services/infrastructure/log_redaction.py), and pass their
error lines, which may quote a malformed request line, through the same masking.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from flask import Flask
from gunicorn.glogging import Logger as GunicornLogger
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from services.infrastructure.log_redaction import RedactCredentials, redact_path

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger("tenzo.http")

# gunicorn access log: %(U)s is the path without its query string (masked below).
GUNICORN_ACCESS_LOG_FORMAT = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'


class PathOnlyRequestHandler(WSGIRequestHandler):
    """werkzeug's request handler logging ``redact_path`` of each request's target."""

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        words = self.requestline.split()
        # No path when the request line was malformed: log what it named.
        target = getattr(self, "path", None) or (words[1] if len(words) > 1 else "")
        command = self.command or (words[0] if words else "-")
        log.info(
            '%s "%s %s" %s',
            self.address_string(),
            redact_path(command),
            redact_path(target),
            code,
        )

    def log(self, type: str, message: str, *args: Any) -> None:
        # werkzeug's own lines ("code 400, message Bad request syntax (…)") quote the
        # request line.
        super().log(type, "%s", redact_path(message % args if args else message))


class RedactingGunicornLogger(GunicornLogger):  # type: ignore[misc]
    """gunicorn's logger, its access lines logging ``redact_path`` of the path and its
    error lines (which quote malformed request lines) masked as well."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            if not any(isinstance(f, RedactCredentials) for f in logger.filters):
                logger.addFilter(RedactCredentials())

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        atoms["U"] = redact_path(atoms["U"] or "")
        atoms["r"] = f"{atoms['m']} {atoms['U']} {atoms['H']}"  # the request line, no query
        atoms["q"] = ""
        return atoms


class CloseAfterRefusedBody:
    """WSGI middleware: a 413 answer (a body over the limit, never read to its end)
    closes its connection, which cannot carry another request.

    A WSGI application may not send hop-by-hop headers such as ``Connection``, so each
    server is asked in its own way. gunicorn writes ``Connection: close`` and closes
    gracefully when its response is told to (``force_close``, on the object whose
    ``start_response`` we are given); it used to say keep-alive, then drop the
    connection. werkzeug's server says ``Connection: close`` on every answer, but then
    reads the rest of the body until the client hangs up: half-closing the socket
    once the answer is written tells the client it is over.
    """

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        half_close = False

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            nonlocal half_close
            if status.startswith("413"):
                _ask_gunicorn_to_close(start_response)
                # Nothing follows a body of known length (a chunked one ends with a
                # last chunk werkzeug writes after it).
                half_close = any(name.lower() == "content-length" for name, _ in headers)
            return start_response(status, headers, exc_info)

        body = self.app(environ, start)
        sock = environ.get("werkzeug.socket")
        if not half_close or sock is None:
            return body
        return _half_close_after(body, sock)


def _ask_gunicorn_to_close(start_response: StartResponse) -> None:
    """gunicorn's ``start_response`` is a method of its Response, whose ``force_close``
    makes it answer ``Connection: close`` and close gracefully; other servers have none."""
    force_close = getattr(getattr(start_response, "__self__", None), "force_close", None)
    if callable(force_close):
        force_close()


def _half_close_after(body: Iterable[bytes], sock: socket.socket) -> Iterator[bytes]:
    """Yield the body, then shut the socket's sending side (the client reads the end of
    the answer and the connection); a body of known length has nothing after it."""
    try:
        yield from body
        with contextlib.suppress(OSError):  # the client may be gone already
            sock.shutdown(socket.SHUT_WR)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()


def embedded_server(app: Flask, host: str, port: int) -> BaseWSGIServer:
    """A threaded HTTP server for `tenzo serve` (call ``serve_forever``/``shutdown``)."""
    return make_server(
        host,
        port,
        CloseAfterRefusedBody(app),
        threaded=True,
        request_handler=PathOnlyRequestHandler,
    )


def run_gunicorn(app_factory_spec: str, bind: str, workers: int) -> None:
    """Run gunicorn in this process with the given app (``module:callable()``)."""
    from gunicorn.app.base import BaseApplication
    from gunicorn.util import import_app

    options: dict[str, Any] = {
        "bind": bind,
        "workers": workers,
        "worker_class": "gthread",
        "threads": 8,
        "accesslog": "-",
        "access_log_format": GUNICORN_ACCESS_LOG_FORMAT,
        "logger_class": RedactingGunicornLogger,
        "graceful_timeout": 10,
        "worker_exit": _close_api_services,
    }

    # gunicorn's documented custom application: its settings come from here, not
    # from parsing `tenzo api`'s own command line.
    class TenzoGunicorn(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for name, value in options.items():
                self.cfg.set(name, value)
            if "control_socket_disable" in self.cfg.settings:  # gunicorn ≥ 25.1
                # Its control socket is one path per user: two `tenzo api` on a host
                # would share it, and the first to stop would remove the other's.
                self.cfg.set("control_socket_disable", True)

        def load(self) -> Any:
            return CloseAfterRefusedBody(import_app(app_factory_spec))

    TenzoGunicorn().run()


def _close_api_services(server: Any, worker: Any) -> None:
    """A worker that exits closes the API services its app was built with (they write
    the batched API key usage first: services/bootstrap.py, ``ApiServices.close``)."""
    served = getattr(worker, "wsgi", None)  # what ``load`` returned, in this worker
    flask_app = getattr(served, "app", None)
    api_services = getattr(flask_app, "extensions", {}).get("tenzo")
    if api_services is not None:
        api_services.close()
