"""What the routes of one API process share: the ApiServices the app is built with
(by ``build_api`` in services/bootstrap.py, the composition root)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import current_app

from domain.application import DeveloperTools
from services.api.idempotency import IdempotencyStore
from services.api.rate_limit import TokenBuckets
from services.api.usage import UsageCounter
from services.settings import Settings

log = logging.getLogger("tenzo.api")


@dataclass
class ApiServices:
    """What the routes of one API process share (``current_app.extensions["tenzo"]``):
    settings, the application and the API's own stores. Built by ``build_api``; whoever
    built it calls ``close`` when the process stops serving."""

    settings: Settings
    application: DeveloperTools
    usage: UsageCounter
    idempotency: IdempotencyStore
    rate_limit: TokenBuckets
    # Whether /readyz has declared the broker's exchange and queues (once is enough:
    # they are durable; later probes only check that the broker answers).
    broker_prepared: bool = False

    def close(self) -> None:
        """Write the batched API key usage (the process is about to stop); never raises."""
        try:
            self.usage.flush()
        except Exception:
            log.exception("flushing API key usage at exit failed")


def services() -> ApiServices:
    found: ApiServices = current_app.extensions["tenzo"]
    return found
