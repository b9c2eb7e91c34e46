"""The Delivery aggregate: deterministic id, attempt numbering, series, outcomes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from domain.actors import DISPATCHER, actor
from domain.deliveries import Delivery, RetrySchedule, delivery_id
from domain.errors import Conflict
from services.dispatcher.retry import RetryPolicy

ORG = uuid.UUID("6b4f3d1e-0000-4000-8000-000000000001")
ADMIN = actor("admin_token", uuid.uuid4())
STARTED = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)


def new_delivery(event_id: str = "evt-1") -> Delivery:
    return Delivery(
        org_id=ORG,
        event_id=event_id,
        event_type="interview.completed",
        url="https://hooks.example.com/a",
        body='{"id":"evt-1"}',
        actor=DISPATCHER,
    )


def attempt(delivery: Delivery, status: int | None, error: str | None = None) -> int:
    return delivery.record_attempt(
        started_at=STARTED,
        status_code=status,
        duration_ms=120,
        error=error,
        response_excerpt="",
        actor=DISPATCHER,
    )


def test_the_id_depends_only_on_organization_and_event():
    assert new_delivery().id == delivery_id(ORG, "evt-1") == new_delivery().id
    assert new_delivery("evt-2").id != new_delivery().id
    assert delivery_id(uuid.uuid4(), "evt-1") != delivery_id(ORG, "evt-1")


def test_a_new_delivery_is_pending_without_attempts():
    delivery = new_delivery()
    assert delivery.status == "pending"
    assert delivery.attempts == []
    assert delivery.next_attempt_number == 1
    assert delivery.completed_at is None
    assert delivery.last_attempt_ended_at() is None


def test_attempts_are_numbered_and_success_ends_the_delivery():
    delivery = new_delivery()
    assert attempt(delivery, 500, "unexpected status 500") == 1
    assert attempt(delivery, 200) == 2
    delivery.succeed(actor=DISPATCHER)

    assert [a["number"] for a in delivery.attempts] == [1, 2]
    assert delivery.status == "succeeded"
    assert delivery.completed_at == delivery.modified_on
    assert delivery.last_attempt_ended_at() == STARTED + timedelta(milliseconds=120)
    with pytest.raises(Conflict):
        attempt(delivery, 200)


def test_failure_and_a_redelivery_continue_the_numbering_in_a_new_series():
    delivery = new_delivery()
    for _ in range(3):
        attempt(delivery, None, "connection refused")
    delivery.fail("3 attempts failed", actor=DISPATCHER)
    assert delivery.status == "failed"

    delivery.request_redelivery(url="https://hooks.example.com/new", actor=ADMIN)

    assert delivery.status == "pending"
    assert delivery.url == "https://hooks.example.com/new"
    assert delivery.series == 2
    assert delivery.attempts_in_series == 0
    assert delivery.last_attempt_ended_at() is None
    assert attempt(delivery, 204) == 4
    assert delivery.attempts_in_series == 1


def test_a_pending_delivery_cannot_be_redelivered_and_success_needs_an_attempt():
    delivery = new_delivery()
    with pytest.raises(Conflict):
        delivery.request_redelivery(url="https://hooks.example.com/a", actor=ADMIN)
    with pytest.raises(Conflict):
        delivery.succeed(actor=DISPATCHER)


def test_events_are_named_for_the_audit_history():
    delivery = new_delivery()
    attempt(delivery, 200)
    delivery.succeed(actor=DISPATCHER)
    names = [type(e).__qualname__ for e in delivery.collect_events()]
    assert names == ["Delivery.Scheduled", "Delivery.Attempted", "Delivery.Succeeded"]


SCHEDULE = RetryPolicy(RetrySchedule(retry_delays=(0.0, 2.0, 4.0), stalled_after=60.0))


def at(moment: datetime, seconds: float) -> datetime:
    return moment + timedelta(seconds=seconds)


def test_the_next_attempt_is_due_its_delay_after_the_previous_one_ended():
    delivery = new_delivery()
    assert delivery.next_attempt_due(SCHEDULE) == delivery.modified_on  # first: no delay
    attempt(delivery, 500, "unexpected status 500")
    ended = STARTED + timedelta(milliseconds=120)
    assert delivery.next_attempt_due(SCHEDULE) == at(ended, 2)
    attempt(delivery, 500, "unexpected status 500")
    assert delivery.next_attempt_due(SCHEDULE) == at(ended, 4)
    attempt(delivery, 500, "unexpected status 500")
    # every attempt made: the outcome is due at once
    assert delivery.next_attempt_due(SCHEDULE) == delivery.modified_on


def test_a_pending_delivery_is_stalled_only_once_its_next_step_is_overdue_by_the_margin():
    delivery = new_delivery()
    last = delivery.modified_on
    assert not delivery.is_stalled(SCHEDULE, at(last, 59))
    assert delivery.is_stalled(SCHEDULE, at(last, 61))

    waiting = new_delivery()  # its second attempt is due an hour after the first
    waiting.record_attempt(
        started_at=waiting.modified_on,
        status_code=500,
        duration_ms=0,
        error="unexpected status 500",
        response_excerpt="",
        actor=DISPATCHER,
    )
    hourly = RetryPolicy(RetrySchedule(retry_delays=(0.0, 3600.0), stalled_after=60.0))
    assert not waiting.is_stalled(hourly, at(waiting.modified_on, 3600 + 59))
    assert waiting.is_stalled(hourly, at(waiting.modified_on, 3600 + 61))

    attempt(delivery, 200)
    delivery.succeed(actor=DISPATCHER)
    assert not delivery.is_stalled(SCHEDULE, at(last, 3600))  # ended: never stalled


def test_resuming_records_who_took_over_and_why_and_only_while_pending():
    delivery = new_delivery()
    attempt(delivery, 500, "unexpected status 500")
    delivery.resume(reason="redelivered by the broker", actor=DISPATCHER)

    events = delivery.collect_events()
    assert type(events[-1]).__qualname__ == "Delivery.Resumed"
    assert events[-1].reason == "redelivered by the broker"  # type: ignore[attr-defined]
    assert delivery.next_attempt_number == 2  # the numbering goes on
    assert delivery.status == "pending"
    attempt(delivery, 200)
    delivery.succeed(actor=DISPATCHER)
    with pytest.raises(Conflict):
        delivery.resume(reason="late", actor=DISPATCHER)


def test_a_stalled_pending_delivery_may_be_redelivered_a_live_one_may_not():
    delivery = new_delivery()
    attempt(delivery, 500, "unexpected status 500")
    soon = at(delivery.modified_on, 10)
    with pytest.raises(Conflict):
        delivery.request_redelivery("https://hooks.example.com/a", ADMIN, SCHEDULE, soon)

    later = at(delivery.modified_on, 120)
    delivery.request_redelivery("https://hooks.example.com/b", ADMIN, SCHEDULE, later)

    assert delivery.series == 2
    assert delivery.url == "https://hooks.example.com/b"
    assert attempt(delivery, 204) == 2
