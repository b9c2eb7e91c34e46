"""What the routes of one API process share: the ApiServices the app was built with."""

from __future__ import annotations

from flask import current_app

from services.bootstrap import ApiServices


def services() -> ApiServices:
    found: ApiServices = current_app.extensions["tenzo"]
    return found
