"""Operations endpoints: liveness, readiness, metrics."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from services.api.context import services
from services.infrastructure import metrics
from services.infrastructure.broker import broker_reachable
from services.infrastructure.encryption_check import EncryptionKeyMismatch, check_encryption_key
from services.infrastructure.topology import prepare_broker

blp = Blueprint("ops", __name__)


@blp.get("/healthz")
def healthz() -> Any:
    return jsonify(status="ok")


@blp.get("/readyz")
def readyz() -> Any:
    """Ready when the event store answers, this process's encryption key decrypts its
    newest event (services/infrastructure/encryption_check.py), and the broker answers."""
    ctx = services()
    checks = {"event_store": "ok", "broker": "ok"}
    try:
        check_encryption_key(ctx.application)
    except EncryptionKeyMismatch:
        checks["event_store"] = "unreadable: TENZO_ENCRYPTION_KEY cannot decrypt its events"
    except Exception:  # noqa: BLE001 - readiness reports, it does not raise
        checks["event_store"] = "unreachable"
    if ctx.broker_prepared:
        broker_ok = broker_reachable(ctx.settings.broker_url)
    else:
        broker_ok = ctx.broker_prepared = prepare_broker(ctx.settings.broker_url)
    if not broker_ok:
        checks["broker"] = "unreachable"
    ready = all(value == "ok" for value in checks.values())
    response = jsonify(status="ready" if ready else "not ready", checks=checks)
    response.status_code = 200 if ready else 503
    return response


@blp.get("/metrics")
def prometheus_metrics() -> Response:
    body, content_type = metrics.render()
    return Response(body, content_type=content_type)
