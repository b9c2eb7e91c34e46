"""Admin API of deliveries (SPEC 5.2) on SQLite and PostgreSQL: shapes, pages, refusals.

Sending is the dispatcher's (tests/integration/test_dispatcher.py); here deliveries are
scheduled and advanced through the domain, as the dispatcher would.
"""

from __future__ import annotations

import uuid

from tests.conftest import history
from tests.support.dispatching import record_outcome

WEBHOOK = {"url": "https://93.184.215.14/webhooks/tenzo", "secret": "s3cret-value", "enabled": True}


def configure(client, org, **changes):
    response = client.put("/admin/v1/webhook", json=WEBHOOK | changes, headers=org.headers)
    assert response.status_code in (200, 201)


def test_a_test_event_is_a_pending_webhook_test_delivery(client, org, application):
    configure(client, org)

    sent = client.post("/admin/v1/webhook/test", headers=org.headers)

    assert sent.status_code == 202
    delivery_id = sent.json["delivery_id"]
    shown = client.get(f"/admin/v1/deliveries/{delivery_id}", headers=org.headers)
    assert shown.status_code == 200
    body = shown.json
    assert set(body) == {
        "id", "event_id", "event_type", "url", "status", "attempts", "created_at",
        "completed_at", "request_body", "next_attempt_at", "run",
    }  # fmt: skip
    assert body["event_type"] == "webhook.test"
    assert body["status"] == "pending" and body["attempts"] == []
    assert body["url"] == WEBHOOK["url"] and body["completed_at"] is None
    types = [
        i["type"] for i in application.event_history(org.id, aggregate_id=uuid.UUID(delivery_id))
    ]
    assert types == ["DeliveryScheduled"]


def test_attempts_and_outcome_are_shown(client, org, application):
    configure(client, org)
    delivery_id = client.post("/admin/v1/webhook/test", headers=org.headers).json["delivery_id"]
    record_outcome(application, org.id, uuid.UUID(delivery_id), 204)

    body = client.get(f"/admin/v1/deliveries/{delivery_id}", headers=org.headers).json

    assert body["status"] == "succeeded" and body["completed_at"]
    [attempt] = body["attempts"]
    assert attempt["number"] == 1 and attempt["status_code"] == 204
    assert attempt["duration_ms"] == 12 and attempt["error"] is None
    assert attempt["started_at"] and attempt["response_excerpt"] == ""


def test_redeliver_starts_a_new_series_and_refuses_a_pending_delivery(client, org, application):
    configure(client, org)
    delivery_id = client.post("/admin/v1/webhook/test", headers=org.headers).json["delivery_id"]
    before = history(application)
    pending = client.post(f"/admin/v1/deliveries/{delivery_id}/redeliver", headers=org.headers)
    assert pending.status_code == 409
    assert pending.headers["Content-Type"] == "application/problem+json"
    assert history(application) == before

    record_outcome(application, org.id, uuid.UUID(delivery_id), 500)
    again = client.post(f"/admin/v1/deliveries/{delivery_id}/redeliver", headers=org.headers)

    assert again.status_code == 202
    assert again.json["status"] == "pending" and len(again.json["attempts"]) == 1
    types = [
        i["type"] for i in application.event_history(org.id, aggregate_id=uuid.UUID(delivery_id))
    ]
    assert types[-1] == "DeliveryRedeliveryRequested"


def test_without_an_enabled_webhook_nothing_is_scheduled(client, org, application):
    before = history(application)
    missing = client.post("/admin/v1/webhook/test", headers=org.headers)
    assert missing.status_code == 404
    configure(client, org, enabled=False)
    before = history(application)

    disabled = client.post("/admin/v1/webhook/test", headers=org.headers)

    assert disabled.status_code == 409
    assert "disabled" in disabled.json["detail"]
    assert history(application) == before


def test_lists_are_newest_first_filtered_and_paged(client, org, application):
    configure(client, org)
    ids = [
        client.post("/admin/v1/webhook/test", headers=org.headers).json["delivery_id"]
        for _ in range(3)
    ]
    record_outcome(application, org.id, uuid.UUID(ids[0]), 204)

    first = client.get("/admin/v1/deliveries?limit=2", headers=org.headers).json
    second = client.get(
        f"/admin/v1/deliveries?limit=2&cursor={first['next_cursor']}", headers=org.headers
    ).json
    succeeded = client.get("/admin/v1/deliveries?status=succeeded", headers=org.headers).json
    pending = client.get("/admin/v1/deliveries?status=pending", headers=org.headers).json

    assert [d["id"] for d in first["items"]] == [ids[2], ids[1]]
    assert [d["id"] for d in second["items"]] == [ids[0]] and second["next_cursor"] is None
    assert [d["id"] for d in succeeded["items"]] == [ids[0]]
    assert [d["id"] for d in pending["items"]] == [ids[2], ids[1]]


def test_another_organization_s_delivery_does_not_exist(client, org, other_org, application):
    configure(client, org)
    delivery_id = client.post("/admin/v1/webhook/test", headers=org.headers).json["delivery_id"]
    before = history(application)

    shown = client.get(f"/admin/v1/deliveries/{delivery_id}", headers=other_org.headers)
    redelivered = client.post(
        f"/admin/v1/deliveries/{delivery_id}/redeliver", headers=other_org.headers
    )
    listed = client.get("/admin/v1/deliveries", headers=other_org.headers).json

    assert shown.status_code == redelivered.status_code == 404
    assert listed == {"items": [], "next_cursor": None}
    assert history(application) == before


def test_bad_queries_are_422_problems(client, org, application):
    before = history(application)
    for query in ("status=done", "limit=0", "limit=101", "cursor=not-a-cursor"):
        response = client.get(f"/admin/v1/deliveries?{query}", headers=org.headers)
        assert response.status_code == 422, query
        assert response.headers["Content-Type"] == "application/problem+json"
        assert response.json["errors"], query
    assert client.get("/admin/v1/deliveries", headers={}).status_code == 401
    assert history(application) == before
