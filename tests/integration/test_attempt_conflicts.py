"""An attempt whose save conflicts with another writer's (delivery_runner.py): the worker
has gone back to the pool, and the committer's continuation hands the conflict to the
pool, where it is read, not guessed at. Another dispatcher that recorded this very
attempt carries on with it; anything else recorded first gets this attempt on top.
Real parts: the event store, the embedded broker, an HTTPS receiver on loopback; the
other writer saves through the application while this dispatcher's POST is under way."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from domain.actors import DISPATCHER
from domain.deliveries import Delivery, delivery_id
from services.dispatcher.sender import AttemptResult, WebhookSender
from tests.support.dispatching import *  # noqa: F403 - fixtures
from tests.support.dispatching import (
    Stack,
    interview_message,
    make_settings,
    publish,
    record_outcome,
    wait_for,
)


class SendsThen:
    """The dispatcher's own sender; once its POST is answered, ``meanwhile`` runs (the
    other writer) before the attempt is recorded."""

    def __init__(self, sender: WebhookSender, meanwhile: Callable[[], None]) -> None:
        self.sender, self.meanwhile = sender, meanwhile

    def send(self, url: str, body: bytes, headers: dict[str, str]) -> AttemptResult:
        result = self.sender.send(url, body, headers)
        self.meanwhile()
        return result

    def close(self) -> None:
        self.sender.close()


def run_with_another_writer(
    tmp_path: Any, receiver: Any, write: Callable[[Stack, Any, Any], None]
) -> tuple[Any, list[str]]:
    broker_url = f"filesystem://{tmp_path}/broker"
    settings = make_settings(tmp_path, broker_url, receiver.ca_pem_path)
    with Stack(settings) as stack:
        org_id = stack.organization(receiver.url)
        message = interview_message(org_id)
        the_delivery = delivery_id(org_id, message["event_id"])
        runner = stack.dispatcher.runner
        runner.sender = SendsThen(  # type: ignore[assignment]
            runner.sender, lambda: write(stack, org_id, the_delivery)
        )
        publish(broker_url, message)
        ended = stack.wait_for_outcome(org_id, message["event_id"])
        wait_for(lambda: not stack.dispatcher.in_flight, 10, "the message to be settled")
        history = stack.application.event_history(org_id, aggregate_id=the_delivery)
    return ended, [item["type"] for item in history]


def test_the_same_attempt_recorded_by_another_dispatcher_is_not_recorded_twice(
    tmp_path, receiver, caplog
):
    caplog.set_level(logging.INFO, logger="tenzo.dispatcher")

    def other_dispatcher_records_attempt_one(stack: Stack, org_id: Any, the_delivery: Any):
        record_outcome(stack.application, org_id, the_delivery, 200)

    ended, types = run_with_another_writer(tmp_path, receiver, other_dispatcher_records_attempt_one)

    assert ended.status == "succeeded"
    assert types == ["DeliveryScheduled", "DeliveryAttempted", "DeliverySucceeded"]
    assert [attempt["duration_ms"] for attempt in ended.attempts] == [12]  # the other's
    assert len(receiver.requests) == 1
    assert "attempt 1 was also made by another dispatcher" in caplog.text


def test_an_attempt_is_recorded_on_top_of_what_another_writer_recorded_first(tmp_path, receiver):
    def another_claims_it(stack: Stack, org_id: Any, the_delivery: Any):
        delivery = stack.application.repository.get(the_delivery)
        assert isinstance(delivery, Delivery)
        delivery.resume(reason="a test: another dispatcher took it over", actor=DISPATCHER)
        stack.application.save(delivery)

    ended, types = run_with_another_writer(tmp_path, receiver, another_claims_it)

    assert ended.status == "succeeded"
    assert types == [
        "DeliveryScheduled",
        "DeliveryResumed",
        "DeliveryAttempted",
        "DeliverySucceeded",
    ]
    assert [attempt["status_code"] for attempt in ended.attempts] == [200]
