"""Serving the WSGI app under gunicorn in `tenzo api` (`tenzo serve`'s embedded server is
services/api/embedded_server.py).

A credential pasted into a URL must not reach a log line: gunicorn logs paths without
their query strings and with credentials masked (services/infrastructure/log_redaction.py),
and passes its error lines, which may quote a malformed request line, through the same
masking. Its workers count metrics in prometheus-client's multiprocess mode
(services/infrastructure/metrics.py), so /metrics is one view of all of them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from gunicorn.glogging import Logger as GunicornLogger

from services.infrastructure import metrics
from services.infrastructure.log_redaction import RedactCredentials, redact_path

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# gunicorn access log: %(U)s is the path without its query string (masked below).
GUNICORN_ACCESS_LOG_FORMAT = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'


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

    A WSGI application may not send hop-by-hop headers such as ``Connection``, so
    gunicorn is asked in its own way: it writes ``Connection: close`` and closes
    gracefully when its response is told to (``force_close``, on the object whose
    ``start_response`` we are given); it used to say keep-alive, then drop the
    connection. (waitress, in `tenzo serve`, refuses such a body before the app sees it.)
    """

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if status.startswith("413"):
                _ask_gunicorn_to_close(start_response)
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


def _ask_gunicorn_to_close(start_response: StartResponse) -> None:
    """gunicorn's ``start_response`` is a method of its Response, whose ``force_close``
    makes it answer ``Connection: close`` and close gracefully; other servers have none."""
    force_close = getattr(getattr(start_response, "__self__", None), "force_close", None)
    if callable(force_close):
        force_close()


def run_gunicorn(app_factory_spec: str, bind: str, workers: int) -> None:
    """Run gunicorn in this process with the given app (``module:callable()``), its
    workers counting metrics in one fresh multiprocess folder, removed at the end."""
    from gunicorn.app.base import BaseApplication
    from gunicorn.util import import_app

    shared_metrics = metrics.share_between_processes()  # before the workers fork

    def forget_worker(server: Any, worker: Any) -> None:
        metrics.forget_process(worker.pid)

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
        "child_exit": forget_worker,  # in the master, once a worker has exited
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

    master = os.getpid()
    try:
        TenzoGunicorn().run()
    finally:
        if os.getpid() == master:  # a worker leaves through here too, and must not remove it
            shared_metrics.remove()


def _close_api_services(server: Any, worker: Any) -> None:
    """A worker that exits closes the API services its app was built with (they write
    the batched API key usage first: services/bootstrap.py, ``ApiServices.close``)."""
    served = getattr(worker, "wsgi", None)  # what ``load`` returned, in this worker
    flask_app = getattr(served, "app", None)
    api_services = getattr(flask_app, "extensions", {}).get("tenzo")
    if api_services is not None:
        api_services.close()
