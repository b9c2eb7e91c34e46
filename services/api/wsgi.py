"""WSGI entry point for gunicorn: ``gunicorn 'services.api.wsgi:create()'``.

Workers start together; building the application takes turns on creating tables
(services/bootstrap.py), so they can.
"""

from __future__ import annotations

from flask import Flask

from services.api.app import create_app
from services.settings import Settings


def create() -> Flask:
    return create_app(Settings.from_env())
