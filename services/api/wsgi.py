"""WSGI entry point for gunicorn: ``gunicorn 'services.api.wsgi:create()'``.

Workers start together; building the application takes turns on creating tables
(services/bootstrap.py), so they can. gunicorn's worker_exit hook closes the services
built here (services/api/http_server.py).
"""

from __future__ import annotations

from flask import Flask

from services.api.app import create_app
from services.bootstrap import build_api
from services.settings import Settings


def create() -> Flask:
    return create_app(build_api(Settings.from_env()))
