"""Admin API (SPEC 5.2): webhook deliveries, redelivery, and test events."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from flask import g

from contracts import delivery_schemas as schemas
from domain.deliveries import Delivery
from services.api.auth import require_admin
from services.api.context import services
from services.api.request_bodies import Blueprint

blp = Blueprint(
    "deliveries",
    __name__,
    url_prefix="/admin/v1",
    description="Webhook deliveries: every attempt, redelivery, test events",
)


def present_delivery(delivery: Delivery) -> dict[str, Any]:
    retry = services().application.retry
    return {
        "id": delivery.id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "url": delivery.url,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "created_at": delivery.created_on,
        "completed_at": delivery.completed_at,
        "request_body": delivery.body,
        "next_attempt_at": delivery.next_attempt_at(retry),
        "run": delivery.series,
    }


@blp.route("/webhook/test", methods=["POST"])
@require_admin
@blp.response(202, schemas.DeliveryCreatedSchema)
def send_test_event() -> dict[str, Any]:
    """Send a signed ``webhook.test`` event to the webhook (409 while it is disabled)."""
    delivery = services().application.send_test_event(g.org_id, g.actor)
    return {"delivery_id": delivery.id}


@blp.route("/deliveries", methods=["GET"])
@require_admin
@blp.arguments(schemas.DeliveryQuerySchema, location="query")
@blp.response(200, schemas.DeliveryPageSchema)
def list_deliveries(query: dict[str, Any]) -> dict[str, Any]:
    """The organization's deliveries, newest first."""
    deliveries, next_cursor = services().application.list_deliveries(
        g.org_id, query.get("status"), query["limit"], query.get("cursor")
    )
    return {"items": [present_delivery(d) for d in deliveries], "next_cursor": next_cursor}


@blp.route("/deliveries/recover", methods=["POST"])
@require_admin
@blp.arguments(schemas.RecoverSchema)
@blp.response(202, schemas.RecoveredSchema)
def recover_deliveries(body: dict[str, Any]) -> dict[str, Any]:
    """Redeliver every failed delivery created in [since, until) (same X-Webhook-Id, a
    new run each), paced by the dispatcher so that other organizations are not delayed;
    409 while the webhook is disabled."""
    application = services().application
    application.get_webhook(g.org_id)  # 404 without a webhook, before any reading
    ids = application.failed_delivery_ids(g.org_id, body["since"], body.get("until"))
    return {"count": application.recover_deliveries(g.org_id, ids, g.actor)}


@blp.route("/deliveries/<uuid:id>", methods=["GET"])
@require_admin
@blp.response(200, schemas.DeliverySchema)
def get_delivery(id: UUID) -> dict[str, Any]:
    return present_delivery(services().application.get_delivery(g.org_id, id))


@blp.route("/deliveries/<uuid:id>/redeliver", methods=["POST"])
@require_admin
@blp.response(202, schemas.DeliverySchema)
def redeliver(id: UUID) -> dict[str, Any]:
    """Send the delivery again (same X-Webhook-Id and body) to the current URL, as a new
    series of attempts; 409 while it is pending or while the webhook is disabled."""
    return present_delivery(services().application.request_redelivery(g.org_id, id, g.actor))
