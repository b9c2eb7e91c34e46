"""No delivery stays pending once its attempts are over (SPEC 11): a pending delivery
that no dispatcher works on (its message was acknowledged, its dispatcher lost it) is
found by a dispatcher's sweeper once it is stalled, claimed with DeliveryResumed and
finished; of two dispatchers, one resumes it; and an admin may redeliver it."""

from __future__ import annotations

import time
import uuid

import pytest
from prometheus_client import REGISTRY

from domain.actors import DISPATCHER, OPERATOR
from domain.deliveries import Delivery
from domain.errors import Conflict
from tests.support.dispatching import *  # noqa: F403 - fixtures
from tests.support.dispatching import Stack, make_settings, wait_for
from tests.support.https_receiver import ScriptedResponse

STALLED_AFTER = "1"


def strand(stack: Stack, org_id: uuid.UUID, url: str) -> Delivery:
    """A delivery whose first attempt failed and that nobody carries on: saved straight
    to the event store, with no broker message anywhere."""
    delivery = Delivery(
        org_id=org_id,
        event_id=str(uuid.uuid4()),
        event_type="interview.completed",
        url=url,
        body='{"stranded": true}',
        actor=DISPATCHER,
    )
    delivery.record_attempt(
        started_at=stack.application.clock(),
        status_code=500,
        duration_ms=3,
        error="unexpected status 500",
        response_excerpt="",
        actor=DISPATCHER,
    )
    stack.application.save(delivery)
    return delivery


def wait_until_ended(stack: Stack, org_id: uuid.UUID, delivery: Delivery) -> Delivery:
    def ended() -> Delivery | None:
        found = stack.application.get_delivery(org_id, delivery.id)
        return found if found.status != "pending" else None

    return wait_for(ended, 30, f"delivery {delivery.id} to end")


def history_types(stack: Stack, org_id: uuid.UUID, delivery: Delivery) -> list[str]:
    items = stack.application.event_history(org_id, aggregate_id=delivery.id)
    return [item["type"] for item in items]


def resumed_count() -> float:
    sample = REGISTRY.get_sample_value(
        "tenzo_webhook_deliveries_resumed_total", {"reason": "stalled"}
    )
    return sample or 0.0


def test_a_stranded_pending_delivery_is_resumed_and_finished(tmp_path, broker_url, receiver):
    settings = make_settings(
        tmp_path, broker_url, receiver.ca_pem_path, TENZO_DISPATCHER_STALLED_AFTER=STALLED_AFTER
    )
    resumed_before = resumed_count()
    with Stack(settings) as stack:
        org_id = stack.organization(receiver.url)
        delivery = strand(stack, org_id, receiver.url)
        ended = wait_until_ended(stack, org_id, delivery)
        types = history_types(stack, org_id, delivery)
        resumed = [
            item
            for item in stack.application.event_history(org_id, aggregate_id=delivery.id)
            if item["type"] == "DeliveryResumed"
        ]

    assert ended.status == "succeeded"
    assert [a["number"] for a in ended.attempts] == [1, 2]  # the numbering goes on
    assert [r.headers["x-webhook-attempt"] for r in receiver.requests] == ["2"]
    assert [r.headers["x-webhook-id"] for r in receiver.requests] == [delivery.event_id]
    assert types == [
        "DeliveryScheduled",
        "DeliveryAttempted",
        "DeliveryResumed",
        "DeliveryAttempted",
        "DeliverySucceeded",
    ]
    assert resumed[0]["actor"]["type"] == "dispatcher"
    assert "stalled" in resumed[0]["data"]["reason"]
    assert "may have been sent without being recorded" in resumed[0]["data"]["reason"]
    assert resumed_count() == resumed_before + 1


def test_a_stranded_delivery_whose_attempts_are_over_is_failed(tmp_path, broker_url, receiver):
    settings = make_settings(
        tmp_path,
        broker_url,
        receiver.ca_pem_path,
        TENZO_WEBHOOK_RETRY_DELAYS="0",
        TENZO_DISPATCHER_STALLED_AFTER=STALLED_AFTER,
    )
    with Stack(settings) as stack:
        org_id = stack.organization(receiver.url)
        delivery = strand(stack, org_id, receiver.url)  # its one attempt is made
        ended = wait_until_ended(stack, org_id, delivery)

    assert ended.status == "failed"
    assert [a["number"] for a in ended.attempts] == [1]
    assert receiver.requests == []  # nothing more to send


@pytest.mark.rabbitmq
@pytest.mark.parametrize("broker_url", ["rabbitmq"], indirect=True)
def test_two_dispatchers_resume_each_stalled_delivery_once(
    tmp_path, broker_url, receiver, postgres_url
):
    settings = make_settings(
        tmp_path,
        broker_url,
        receiver.ca_pem_path,
        database_url=postgres_url,
        TENZO_DISPATCHER_STALLED_AFTER=STALLED_AFTER,
    )
    receiver.script(*[ScriptedResponse(delay=0.2)] * 40)  # sends overlap the other's sweep
    with Stack(settings) as first, Stack(settings, relay=False) as second:
        org_id = first.organization(receiver.url)
        second.wait_for_projection()
        stranded = [strand(first, org_id, receiver.url) for _ in range(20)]
        ended = [wait_until_ended(first, org_id, d) for d in stranded]
        types = [history_types(first, org_id, d) for d in stranded]

    assert [d.status for d in ended] == ["succeeded"] * 20
    assert [[a["number"] for a in d.attempts] for d in ended] == [[1, 2]] * 20
    assert [t.count("DeliveryResumed") for t in types] == [1] * 20
    sent = sorted(r.headers["x-webhook-id"] for r in receiver.requests)
    assert sent == sorted(d.event_id for d in stranded)  # attempt 2 sent once each


def test_an_admin_may_redeliver_a_stalled_delivery_but_not_a_live_one(tmp_path, receiver):
    settings = make_settings(
        tmp_path,
        f"filesystem://{tmp_path}/broker",
        receiver.ca_pem_path,
        TENZO_DISPATCHER_STALLED_AFTER=STALLED_AFTER,
    )
    stack = Stack(settings)  # not started: no dispatcher works on anything
    try:
        organization, _ = stack.application.create_organization("Stalled", OPERATOR)
        org_id = organization.id
        stack.application.configure_webhook(org_id, receiver.url, None, True, OPERATOR)
        delivery = strand(stack, org_id, receiver.url)
        with pytest.raises(Conflict):
            stack.application.request_redelivery(org_id, delivery.id, OPERATOR)

        time.sleep(float(STALLED_AFTER) + 0.8)  # past its next step (0.2 s) + the margin
        redelivered = stack.application.request_redelivery(org_id, delivery.id, OPERATOR)
    finally:
        stack.application.close()

    assert redelivered.series == 2
    assert redelivered.status == "pending"
    assert redelivered.next_attempt_number == 2
