"""The JSON bodies the dispatcher sends (SPEC 7), rendered once per delivery.

The rendered text is recorded in ``DeliveryScheduled``, so retries and redeliveries
send the very same bytes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from contracts.broker import INTERVIEW_COMPLETED
from contracts.webhook_payload import render_payload
from domain.deliveries import TEST_EVENT_TYPE


def interview_completed_body(
    message: dict[str, Any], candidate: dict[str, Any], job: dict[str, Any]
) -> str:
    """The body for a validated ``interview.completed`` message (contracts/broker.py),
    with the ``candidate`` and ``job`` objects of the projection."""
    data = dict(message["data"]) | {"candidate": candidate, "job": job}
    return _render(
        message["event_id"], INTERVIEW_COMPLETED, message["occurred_at"], message["org_id"], data
    )


def test_event_body(org_id: UUID, event_id: str, created_at: datetime) -> str:
    """The body of a ``webhook.test`` delivery: the interview shape, with sample values."""
    data = {
        "interview_id": "int_test",
        "candidate_id": "cand_test",
        "job_id": "job_test",
        "completed_at": created_at,
        "duration_seconds": 1260,
        "score": 87.5,
        "recommendation": "strong_yes",
        "summary": "A test event sent from Tenzo Developer Tools.",
        "transcript_url": None,
        "candidate": {
            "id": "cand_test",
            "external_id": None,
            "first_name": "Test",
            "last_name": "Candidate",
            "email": "test.candidate@example.com",
        },
        "job": {"id": "job_test", "external_id": None, "title": "Test job"},
    }
    return _render(event_id, TEST_EVENT_TYPE, created_at, org_id, data)


def _render(
    event_id: str, event_type: str, created_at: datetime, org_id: UUID, data: dict[str, Any]
) -> str:
    payload = {
        "id": event_id,
        "event": event_type,
        "created_at": created_at,
        "organization_id": str(org_id),
        "data": data,
    }
    return render_payload(payload).decode("utf-8")
