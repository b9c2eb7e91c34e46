"""The retry schedule (services/dispatcher/retry.py): exactly the configured delays."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from tenacity import stop_after_attempt

from domain.actors import DISPATCHER, OPERATOR
from domain.deliveries import Delivery, RetrySchedule
from services.dispatcher.retry import RetryPolicy, wait_schedule

STARTED = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)


def new_delivery() -> Delivery:
    return Delivery(
        org_id=uuid.uuid4(),
        event_id="evt-1",
        event_type="interview.completed",
        url="https://hooks.example.com/a",
        body="{}",
        actor=DISPATCHER,
    )


def fail_once(delivery: Delivery, started_at: datetime = STARTED, duration_ms: int = 250) -> None:
    delivery.record_attempt(
        started_at=started_at,
        status_code=500,
        duration_ms=duration_ms,
        error="500",
        response_excerpt="",
        actor=DISPATCHER,
    )


def test_the_default_schedule_is_three_attempts_0_2_4_seconds_apart():
    policy = RetryPolicy(RetrySchedule())
    assert [policy.delay_before(made) for made in range(3)] == [0.0, 2.0, 4.0]
    assert [policy.attempts_over(made) for made in range(5)] == [False, False, False, True, True]
    assert policy.attempts == 3


@pytest.mark.parametrize(
    "delays", [(0.0,), (0.0, 0.2, 0.4), (1.5, 30.0, 60.0, 3600.0), (5.0, 0.0, 7.25)]
)
def test_the_delays_are_exactly_the_configured_ones(delays):
    policy = RetryPolicy(RetrySchedule(retry_delays=delays))
    assert [policy.delay_before(made) for made in range(len(delays))] == list(delays)
    assert not policy.attempts_over(len(delays) - 1)
    assert policy.attempts_over(len(delays))


def test_it_is_made_of_tenacity_strategies():
    policy = RetryPolicy(RetrySchedule(retry_delays=(0.0, 2.0)))
    assert isinstance(policy.stop, stop_after_attempt)
    assert isinstance(policy.wait, wait_schedule)
    with pytest.raises(ValueError):
        wait_schedule(())


def test_the_first_attempt_is_due_its_delay_after_the_delivery_was_scheduled():
    delivery = new_delivery()
    policy = RetryPolicy(RetrySchedule(retry_delays=(1.0, 2.0, 4.0)))
    assert delivery.next_attempt_due(policy) == delivery.modified_on + timedelta(seconds=1)


def test_a_retry_is_due_its_delay_after_the_previous_attempt_ended():
    delivery = new_delivery()
    policy = RetryPolicy(RetrySchedule())
    fail_once(delivery)
    assert delivery.next_attempt_due(policy) == STARTED + timedelta(seconds=2.25)
    fail_once(delivery, STARTED + timedelta(seconds=3), duration_ms=1000)
    assert delivery.next_attempt_due(policy) == STARTED + timedelta(seconds=8)


def test_with_every_attempt_made_the_outcome_is_due_at_once():
    delivery = new_delivery()
    policy = RetryPolicy(RetrySchedule())
    for _ in range(3):
        fail_once(delivery)
    assert policy.attempts_over(delivery.attempts_in_series)
    assert delivery.next_attempt_due(policy) == delivery.modified_on


def test_a_redelivery_starts_the_schedule_over():
    delivery = new_delivery()
    policy = RetryPolicy(RetrySchedule())
    for _ in range(3):
        fail_once(delivery)
    delivery.fail(reason="3 attempts failed", actor=DISPATCHER)
    delivery.request_redelivery(url=delivery.url, actor=OPERATOR)
    assert delivery.next_attempt_number == 4
    assert not policy.attempts_over(delivery.attempts_in_series)
    assert delivery.next_attempt_due(policy) == delivery.modified_on


def test_reconnecting_waits_exponentially_from_0_2_to_10_seconds_and_starts_over():
    from services.infrastructure.retrying import ReconnectDelays

    delays = ReconnectDelays()
    assert [delays.next() for _ in range(8)] == [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0]
    delays.reset()
    assert delays.next() == 0.2
