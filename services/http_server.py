"""Serving the WSGI app: werkzeug's threaded server in `tenzo serve`, gunicorn in `tenzo api`.

Both log requests without their query strings: a credential pasted into a URL must
not reach a log line.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

log = logging.getLogger("tenzo.http")

# gunicorn access log: %(U)s is the path without its query string.
GUNICORN_ACCESS_LOG_FORMAT = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'


class PathOnlyRequestHandler(WSGIRequestHandler):
    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        path = self.path.split("?", 1)[0]
        log.info('%s "%s %s" %s', self.address_string(), self.command, path, code)


def embedded_server(app: Flask, host: str, port: int) -> BaseWSGIServer:
    """A threaded HTTP server for `tenzo serve` (call ``serve_forever``/``shutdown``)."""
    return make_server(host, port, app, threaded=True, request_handler=PathOnlyRequestHandler)


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
        "graceful_timeout": 10,
        "worker_exit": _flush_usage_counts,
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
            return import_app(app_factory_spec)

    TenzoGunicorn().run()


def _flush_usage_counts(server: Any, worker: Any) -> None:
    """A worker that exits writes its batched API key usage first."""
    from services.usage import flush_all

    flush_all()
