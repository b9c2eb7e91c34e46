"""Deliveries seen from the admin API: a test event, the list, one delivery, redelivery.

The dispatcher's part (attempts and outcome) is played here by ``ended``, with the
delivery's own commands, as services/dispatcher records them.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from domain.actors import DISPATCHER
from domain.errors import Conflict, InvalidInput, NotFound
from tests.support.applications import position, recorded_since, records_nothing

URL = "https://93.184.215.14/webhooks/tenzo"


@pytest.fixture
def webhook(application, org):
    webhook, _ = application.configure_webhook(org.id, URL, "whsec-secret", True, org.admin)
    return webhook


def ended(application, delivery, status_code):
    """The dispatcher's one attempt and the outcome it records."""
    delivery.record_attempt(datetime.now(UTC), status_code, 12, None, "", DISPATCHER)
    if 200 <= status_code < 300:
        delivery.succeed(DISPATCHER)
    else:
        delivery.fail(f"HTTP {status_code}", DISPATCHER)
    application.save(delivery)
    return delivery


def test_a_test_event_is_a_pending_delivery_of_a_sample_body(application, org, webhook):
    before = position(application)

    delivery = application.send_test_event(org.id, org.admin)

    assert recorded_since(application, before) == ["Delivery.Scheduled"]
    shown = application.get_delivery(org.id, delivery.id)
    assert shown.event_type == "webhook.test" and shown.url == URL
    assert shown.status == "pending" and shown.attempts == []
    body = json.loads(shown.body)
    assert body["id"] == shown.event_id and body["event"] == "webhook.test"
    assert body["organization_id"] == str(org.id)


def test_without_an_enabled_webhook_nothing_is_scheduled(application, org):
    with records_nothing(application), pytest.raises(NotFound):
        application.send_test_event(org.id, org.admin)
    application.configure_webhook(org.id, URL, None, False, org.admin)
    with records_nothing(application), pytest.raises(Conflict):
        application.send_test_event(org.id, org.admin)


def test_an_ended_delivery_is_redelivered_to_the_current_url(application, org, webhook):
    delivery = ended(application, application.send_test_event(org.id, org.admin), 500)
    application.change_webhook(org.id, org.admin, url=URL + "/v2")
    before = position(application)

    again = application.request_redelivery(org.id, delivery.id, org.admin)

    assert recorded_since(application, before) == ["Delivery.RedeliveryRequested"]
    assert again.status == "pending" and again.series == 2
    assert again.url == URL + "/v2" and again.body == delivery.body
    assert again.next_attempt_number == 2  # numbering continues across series


def test_a_pending_delivery_is_not_redelivered_unless_stalled(application, org, webhook):
    delivery = application.send_test_event(org.id, org.admin)

    with records_nothing(application), pytest.raises(Conflict):
        application.request_redelivery(org.id, delivery.id, org.admin)

    application.clock = lambda: datetime.now(UTC) + timedelta(days=1)  # no dispatcher took it
    assert application.request_redelivery(org.id, delivery.id, org.admin).series == 2


def test_redelivery_is_refused_while_delivery_is_disabled(application, org, webhook):
    delivery = ended(application, application.send_test_event(org.id, org.admin), 204)
    application.change_webhook(org.id, org.admin, enabled=False)

    with records_nothing(application), pytest.raises(Conflict):
        application.request_redelivery(org.id, delivery.id, org.admin)


def test_lists_are_newest_first_filtered_by_status_and_paged(application, org, webhook):
    sent = [application.send_test_event(org.id, org.admin) for _ in range(3)]
    ended(application, sent[0], 204)
    ended(application, sent[1], 500)

    everything, cursor = application.list_deliveries(org.id)
    assert [d.id for d in everything] == [d.id for d in reversed(sent)] and cursor is None
    for status, expected in [("succeeded", sent[0]), ("failed", sent[1]), ("pending", sent[2])]:
        assert [d.id for d in application.list_deliveries(org.id, status=status)[0]] == [
            expected.id
        ]

    first, cursor = application.list_deliveries(org.id, limit=2)
    rest, last = application.list_deliveries(org.id, limit=2, cursor=cursor)
    assert [d.id for d in first + rest] == [d.id for d in reversed(sent)] and last is None


@pytest.mark.parametrize(
    ("query", "field"),
    [({"limit": 0}, "limit"), ({"limit": 101}, "limit"), ({"cursor": "nope"}, "cursor")],
)
def test_a_bad_page_is_refused(application, org, query, field):
    with pytest.raises(InvalidInput) as refused:
        application.list_deliveries(org.id, **query)
    assert refused.value.field == field


def test_another_organizations_delivery_does_not_exist(application, org, other_org, webhook):
    delivery = application.send_test_event(org.id, org.admin)
    ended(application, delivery, 500)
    application.configure_webhook(other_org.id, URL, None, True, other_org.admin)

    with records_nothing(application):
        with pytest.raises(NotFound):
            application.get_delivery(other_org.id, delivery.id)
        with pytest.raises(NotFound):
            application.request_redelivery(other_org.id, delivery.id, other_org.admin)
        with pytest.raises(NotFound):
            application.get_delivery(org.id, uuid.uuid4())
    assert application.list_deliveries(other_org.id) == ([], None)
