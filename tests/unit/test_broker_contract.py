"""contracts/broker.py: the interview.completed message (SPEC 6) and routing keys."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime

import pytest

from contracts.broker import InvalidMessage, domain_event_routing_key, parse_interview_completed

ORG = str(uuid.uuid4())
VALID = {
    "event_id": "7d9f0a52-5a7e-4c8e-9a51-0f5e1e0c2b11",
    "event_type": "interview.completed",
    "occurred_at": "2026-11-27T17:00:00Z",
    "org_id": ORG,
    "data": {
        "interview_id": "int_123",
        "candidate_id": "c-1",
        "job_id": "j-1",
        "completed_at": "2026-11-27T16:59:12Z",
        "duration_seconds": 1260,
        "score": 87.5,
        "recommendation": "strong_yes",
        "summary": "Strong systems design.",
        "transcript_url": "https://transcripts.example.com/int_123",
    },
}


def with_change(path: str, value: object) -> bytes:
    message = copy.deepcopy(VALID)
    *parents, last = path.split(".")
    target: dict = message
    for key in parents:
        target = target[key]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return json.dumps(message).encode()


def test_the_spec_example_loads():
    loaded = parse_interview_completed(json.dumps(VALID).encode())
    assert loaded["org_id"] == uuid.UUID(ORG)
    assert loaded["occurred_at"] == datetime(2026, 11, 27, 17, 0, tzinfo=UTC)
    assert loaded["data"]["score"] == 87.5


def test_optional_interview_fields_may_be_missing_or_null():
    message = copy.deepcopy(VALID)
    for key in ("duration_seconds", "score", "recommendation", "summary"):
        del message["data"][key]
    message["data"]["transcript_url"] = None
    loaded = parse_interview_completed(json.dumps(message))
    assert loaded["data"]["score"] is None
    assert loaded["data"]["transcript_url"] is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "invalid JSON"),
        (b"\xff\xfe", "invalid JSON"),
        (b"[1, 2]", "must be an object"),
        (with_change("org_id", "acme"), "org_id: Not a valid UUID."),
        (with_change("event_type", "interview.started"), "event_type:"),
        (with_change("event_id", KeyError), "event_id: Missing data for required field."),
        (with_change("event_id", "has spaces"), "event_id:"),
        (with_change("occurred_at", "2026-11-27T17:00:00"), "occurred_at:"),
        (with_change("data.score", "high"), "data.score: Not a valid number."),
        (with_change("data.recommendation", "maybe"), "data.recommendation:"),
        (with_change("data.duration_seconds", -1), "data.duration_seconds:"),
        (with_change("data.candidate_id", KeyError), "data.candidate_id:"),
        (with_change("data.extra", 1), "data.extra: Unknown field."),
        (with_change("orgid", ORG), "orgid: Unknown field."),
    ],
)
def test_invalid_messages_are_refused_with_a_reason(body, reason):
    with pytest.raises(InvalidMessage) as refused:
        parse_interview_completed(body)
    assert reason in str(refused.value)


@pytest.mark.parametrize(
    ("aggregate", "event", "key"),
    [
        ("Webhook", "WebhookUrlChanged", "devtools.webhook.url_changed"),
        ("ApiKey", "ApiKeyCreated", "devtools.api_key.created"),
        ("Delivery", "DeliveryRedeliveryRequested", "devtools.delivery.redelivery_requested"),
    ],
)
def test_routing_keys_of_relayed_events(aggregate, event, key):
    assert domain_event_routing_key(aggregate, event) == key


def test_events_about_a_delivered_event_carry_its_type():
    assert (
        domain_event_routing_key("Delivery", "DeliveryScheduled", {"event_type": "webhook.test"})
        == "devtools.delivery.scheduled.webhook_test"
    )
    assert (
        domain_event_routing_key(
            "Delivery", "DeliveryScheduled", {"event_type": "interview.completed"}
        )
        == "devtools.delivery.scheduled.interview_completed"
    )
