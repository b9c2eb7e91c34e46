"""The dispatcher (SPEC 6, 7) on the embedded broker and on RabbitMQ, against real HTTPS
receivers on loopback; producers publish with pika on RabbitMQ."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
import trustme
from click.testing import CliRunner
from prometheus_client import REGISTRY
from standardwebhooks.webhooks import Webhook as StandardWebhook

from contracts.broker import INTERVIEWS_QUEUE
from contracts.signing import standard_webhooks_secret, verify
from domain.actors import OPERATOR
from domain.errors import NotFound
from services.cli.main import main
from tests.support import dispatching
from tests.support.dispatching import (
    Stack,
    dead_letters,
    interview_message,
    make_settings,
    publish,
    queue_depth,
    wait_for,
)
from tests.support.https_receiver import HttpsReceiver, ScriptedResponse

SECRET = "whsec-test-secret"

broker_url = dispatching.broker_url  # fixtures: every test on both brokers
receiver = dispatching.receiver


@pytest.fixture
def stack(tmp_path, broker_url, receiver):
    with Stack(make_settings(tmp_path, broker_url, receiver.ca_pem_path)) as running:
        yield running


def requests_for(receiver, event_id):
    return [r for r in receiver.requests if r.headers.get("x-webhook-id") == event_id]


# -- success, headers, signatures, payload -------------------------------------------------


def test_a_valid_message_is_delivered_signed_once_and_recorded(stack, receiver, broker_url):
    org_id = stack.organization(receiver.url, secret=SECRET)
    job, _ = stack.application.upsert_job(
        org_id, {"title": "Backend engineer", "external_id": "J-7"}, OPERATOR
    )
    candidate, _ = stack.application.upsert_candidate(
        org_id,
        {
            "job_id": job.id,
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": "ada@example.com",
            "external_id": "C-9",
        },
        OPERATOR,
    )
    stack.wait_for_projection()
    message = interview_message(org_id)
    message["data"] |= {"candidate_id": str(candidate.id), "job_id": str(job.id)}

    publish(broker_url, message)
    delivery = stack.wait_for_outcome(org_id, message["event_id"])

    assert delivery.status == "succeeded"
    [request] = receiver.requests
    headers, body = request.headers, request.body
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("Tenzo-Webhooks/")
    assert headers["x-webhook-id"] == message["event_id"]
    assert headers["x-webhook-event"] == "interview.completed"
    assert headers["x-webhook-attempt"] == "1"
    assert abs(int(headers["x-webhook-timestamp"]) - time.time()) < 30
    # The signature covers the raw body bytes: it verifies with the secret only.
    assert verify(SECRET, body, headers["x-webhook-signature"])
    assert not verify("another-secret", body, headers["x-webhook-signature"])
    StandardWebhook(standard_webhooks_secret(SECRET)).verify(body, headers)
    payload = json.loads(body)
    assert payload == {
        "id": message["event_id"],
        "event": "interview.completed",
        "created_at": "2026-11-27T17:00:00Z",
        "organization_id": str(org_id),
        "data": {
            **{k: v for k, v in message["data"].items()},
            "candidate": {
                "id": str(candidate.id),
                "external_id": "C-9",
                "first_name": "Ada",
                "last_name": "Lovelace",
                "email": "ada@example.com",
            },
            "job": {"id": str(job.id), "external_id": "J-7", "title": "Backend engineer"},
        },
    }
    # Every step is an event; the message was acknowledged only after them.
    history = stack.application.event_history(org_id, aggregate_id=delivery.id)
    assert [item["type"] for item in history] == [
        "DeliveryScheduled",
        "DeliveryAttempted",
        "DeliverySucceeded",
    ]
    attempted = history[1]["data"]
    assert attempted["number"] == 1 and attempted["status_code"] == 200
    assert attempted["response_excerpt"] == "ok" and attempted["error"] is None
    stack.__exit__(None, None, None)  # unacked messages would go back to the queue
    assert queue_depth(broker_url, INTERVIEWS_QUEUE) == 0


def test_unknown_candidate_and_job_are_sent_as_ids_only(stack, receiver, broker_url):
    org_id = stack.organization(receiver.url)
    other = stack.organization(None)
    job, _ = stack.application.upsert_job(other, {"title": "Someone else's job"}, OPERATOR)
    stack.wait_for_projection()
    message = interview_message(org_id)
    message["data"]["job_id"] = str(job.id)  # exists, but in another organization

    publish(broker_url, message)
    stack.wait_for_outcome(org_id, message["event_id"])

    data = json.loads(receiver.requests[0].body)["data"]
    assert data["candidate"] == {"id": message["data"]["candidate_id"]}
    assert data["job"] == {"id": str(job.id)}


def test_no_secret_means_no_signature_headers(stack, receiver, broker_url):
    org_id = stack.organization(receiver.url, secret=None)
    message = interview_message(org_id)

    publish(broker_url, message)
    stack.wait_for_outcome(org_id, message["event_id"])

    headers = receiver.requests[0].headers
    assert "x-webhook-signature" not in headers
    assert "webhook-signature" not in headers
    assert headers["x-webhook-id"] == message["event_id"]


# -- failures and retries ------------------------------------------------------------------


def test_always_500_makes_three_attempts_then_fails(stack, receiver, broker_url):
    receiver.script(*[ScriptedResponse(status=500, body=b"boom")] * 3)
    org_id = stack.organization(receiver.url)
    message = interview_message(org_id)

    publish(broker_url, message)
    delivery = stack.wait_for_outcome(org_id, message["event_id"])

    assert delivery.status == "failed"
    assert [a["number"] for a in delivery.attempts] == [1, 2, 3]
    assert [a["status_code"] for a in delivery.attempts] == [500, 500, 500]
    assert all(a["error"] == "unexpected status 500" for a in delivery.attempts)
    assert [r.headers["x-webhook-attempt"] for r in receiver.requests] == ["1", "2", "3"]
    assert len({r.body for r in receiver.requests}) == 1  # the same bytes every time
    types = [i["type"] for i in stack.application.event_history(org_id, aggregate_id=delivery.id)]
    assert types == ["DeliveryScheduled"] + ["DeliveryAttempted"] * 3 + ["DeliveryFailed"]


@pytest.mark.rabbitmq
@pytest.mark.parametrize("broker_url", ["rabbitmq"], indirect=True)
def test_500_then_200_with_the_default_delays_retries_after_two_seconds(
    tmp_path, broker_url, receiver
):
    receiver.script(ScriptedResponse(status=500))
    settings = make_settings(
        tmp_path, broker_url, receiver.ca_pem_path, TENZO_WEBHOOK_RETRY_DELAYS="0,2,4"
    )
    with Stack(settings) as stack:
        org_id = stack.organization(receiver.url)
        message = interview_message(org_id)
        publish(broker_url, message)
        delivery = stack.wait_for_outcome(org_id, message["event_id"], timeout=20)

    assert delivery.status == "succeeded"
    first, second = delivery.attempts
    assert (first["number"], first["status_code"]) == (1, 500)
    assert (second["number"], second["status_code"]) == (2, 200)
    gap = (second["started_at"] - first["started_at"]).total_seconds()
    assert 2.0 <= gap < 3.5


@pytest.mark.parametrize(
    ("response", "status", "error"),
    [
        (ScriptedResponse(status=203), 203, "unexpected status 203"),
        (
            ScriptedResponse(status=301, headers={"Location": "https://127.0.0.1:1/x"}),
            301,
            "redirect 301 not followed",
        ),
        (ScriptedResponse(status=404, body=b"x" * 3000), 404, "unexpected status 404"),
    ],
)
def test_other_statuses_are_failed_attempts(tmp_path, receiver, response, status, error):
    receiver.script(response)
    broker = f"filesystem://{tmp_path}/broker"
    settings = make_settings(tmp_path, broker, receiver.ca_pem_path, TENZO_WEBHOOK_RETRY_DELAYS="0")
    with Stack(settings) as stack:
        org_id = stack.organization(receiver.url)
        message = interview_message(org_id)
        publish(broker, message)
        delivery = stack.wait_for_outcome(org_id, message["event_id"])

    assert delivery.status == "failed"
    [attempt] = delivery.attempts
    assert (attempt["status_code"], attempt["error"]) == (status, error)
    assert len(attempt["response_excerpt"]) <= 1024
    assert [r.path for r in receiver.requests] == ["/webhook"]  # no redirect followed


def test_a_trickling_endpoint_is_cut_at_the_total_timeout(tmp_path, receiver):
    receiver.script(ScriptedResponse(body=b"x" * 100, trickle_bytes_per_second=1))
    broker = f"filesystem://{tmp_path}/broker"
    settings = make_settings(
        tmp_path,
        broker,
        receiver.ca_pem_path,
        TENZO_WEBHOOK_RETRY_DELAYS="0",
        TENZO_WEBHOOK_TIMEOUT="1.5",
    )
    with Stack(settings) as stack:
        org_id = stack.organization(receiver.url)
        message = interview_message(org_id)
        publish(broker, message)
        delivery = stack.wait_for_outcome(org_id, message["event_id"])

    [attempt] = delivery.attempts
    assert attempt["error"] == "timeout after 1.5s"
    assert 1400 <= attempt["duration_ms"] < 3000


def test_connection_refused_and_untrusted_certificates_are_failed_attempts(tmp_path, receiver):
    broker = f"filesystem://{tmp_path}/broker"
    settings = make_settings(tmp_path, broker, receiver.ca_pem_path, TENZO_WEBHOOK_RETRY_DELAYS="0")
    with HttpsReceiver(ca=trustme.CA()) as untrusted, Stack(settings) as stack:
        closed = stack.organization("https://127.0.0.1:1/webhook")
        self_signed = stack.organization(untrusted.url)
        refused, bad_tls = interview_message(closed), interview_message(self_signed)
        publish(broker, refused)
        publish(broker, bad_tls)
        refused_delivery = stack.wait_for_outcome(closed, refused["event_id"])
        tls_delivery = stack.wait_for_outcome(self_signed, bad_tls["event_id"])

    assert refused_delivery.attempts[0]["error"] == "connection refused"
    assert refused_delivery.attempts[0]["status_code"] is None
    assert tls_delivery.attempts[0]["error"].startswith("TLS error: certificate verify failed")
    assert untrusted.requests == []


# -- configuration -------------------------------------------------------------------------


def test_a_disabled_webhook_gets_nothing_and_nothing_is_recorded(stack, receiver, broker_url):
    org_id = stack.organization(receiver.url, enabled=False)
    message = interview_message(org_id)
    before = stack.application.recorder.max_notification_id()

    publish(broker_url, message)
    wait_for(lambda: stack.dispatcher.pool.waiting() == 0 and not stack.dispatcher.in_flight)
    time.sleep(0.3)

    assert receiver.requests == []
    with pytest.raises(NotFound):
        stack.delivery(org_id, message["event_id"])
    assert stack.application.recorder.max_notification_id() == before
    assert queue_depth(broker_url, INTERVIEWS_QUEUE) == 0


def test_a_changed_url_gets_the_next_delivery(stack, receiver, broker_url, tmp_path):
    with HttpsReceiver(ca=receiver.ca) as new_receiver:
        org_id = stack.organization(receiver.url)
        first = interview_message(org_id)
        publish(broker_url, first)
        stack.wait_for_outcome(org_id, first["event_id"])

        stack.application.change_webhook(org_id, OPERATOR, url=new_receiver.url)
        stack.wait_for_projection()
        second = interview_message(org_id)
        publish(broker_url, second)
        delivery = stack.wait_for_outcome(org_id, second["event_id"])

        assert [r.headers["x-webhook-id"] for r in receiver.requests] == [first["event_id"]]
        assert [r.headers["x-webhook-id"] for r in new_receiver.requests] == [second["event_id"]]
        assert delivery.url == new_receiver.url


def test_a_message_published_right_after_a_change_sees_it(tmp_path, broker_url, receiver):
    """Read your writes. With no relay running, the projection hears of no change
    through the broker; a message published right after a change still sees it: the
    batch query finds the event store ahead of the projection and projects the changed
    webhook, candidate and job first."""
    settings = make_settings(tmp_path, broker_url, receiver.ca_pem_path)

    def not_sent() -> float:
        labels = {"outcome": "not_sent"}
        return REGISTRY.get_sample_value("tenzo_webhook_deliveries_total", labels) or 0

    with HttpsReceiver(ca=receiver.ca) as new_receiver, Stack(settings, relay=False) as stack:
        application = stack.application
        org, _ = application.create_organization("Acme", OPERATOR)
        application.configure_webhook(org.id, receiver.url, SECRET, True, OPERATOR)
        job, _ = application.upsert_job(org.id, {"title": "Backend engineer"}, OPERATOR)
        candidate, _ = application.upsert_candidate(
            org.id,
            {"job_id": job.id, "first_name": "Ada", "last_name": "L", "email": "ada@example.com"},
            OPERATOR,
        )
        first = interview_message(org.id)
        first["data"] |= {"candidate_id": str(candidate.id), "job_id": str(job.id)}
        publish(broker_url, first)
        assert stack.wait_for_outcome(org.id, first["event_id"]).status == "succeeded"

        application.change_webhook(org.id, OPERATOR, enabled=False)
        before = not_sent()
        disabled = interview_message(org.id)
        publish(broker_url, disabled)
        wait_for(lambda: not_sent() > before, what="the message for a disabled webhook")

        application.change_webhook(org.id, OPERATOR, url=new_receiver.url, enabled=True)
        last = interview_message(org.id)
        publish(broker_url, last)
        assert stack.wait_for_outcome(org.id, last["event_id"]).status == "succeeded"
        with pytest.raises(NotFound):  # nothing sent, nothing recorded while disabled
            stack.delivery(org.id, disabled["event_id"])

    [request] = receiver.requests
    assert verify(SECRET, request.body, request.headers["x-webhook-signature"])
    data = json.loads(request.body)["data"]
    assert data["candidate"]["first_name"] == "Ada" and data["job"]["title"] == "Backend engineer"
    assert [r.headers["x-webhook-id"] for r in new_receiver.requests] == [last["event_id"]]


def test_a_retry_right_after_the_webhook_is_disabled_is_not_sent(tmp_path, broker_url, receiver):
    """Read your writes before a retry: the webhook is disabled during the backoff and
    the relay (not running here) never tells the projection; the retry still sees it in
    the event store and sends nothing."""
    settings = make_settings(
        tmp_path, broker_url, receiver.ca_pem_path, TENZO_WEBHOOK_RETRY_DELAYS="0,1.5"
    )
    receiver.script(ScriptedResponse(status=500))
    with Stack(settings, relay=False) as stack:
        application = stack.application
        org, _ = application.create_organization("Acme", OPERATOR)
        application.configure_webhook(org.id, receiver.url, SECRET, True, OPERATOR)
        message = interview_message(org.id)
        publish(broker_url, message)
        wait_for(lambda: receiver.requests, what="the first attempt")
        application.change_webhook(org.id, OPERATOR, enabled=False)
        delivery = stack.wait_for_outcome(org.id, message["event_id"])

    assert len(receiver.requests) == 1
    assert delivery.status == "failed"
    assert [a["status_code"] for a in delivery.attempts] == [500]


def test_a_delivery_that_waited_goes_to_the_webhook_as_it_is_now(
    tmp_path, broker_url, receiver, monkeypatch
):
    """A slow endpoint's next message waits behind the first; the URL changes meanwhile.
    Once what the dispatcher read is older than FRESH_SECONDS, the waiting delivery reads
    the webhook again and goes to the new URL."""
    from services.dispatcher import delivery_runner

    monkeypatch.setattr(delivery_runner, "FRESH_SECONDS", 0.5)
    settings = make_settings(
        tmp_path, broker_url, receiver.ca_pem_path, TENZO_DISPATCHER_PER_ORG_CONCURRENCY="1"
    )
    receiver.script(ScriptedResponse(delay=2))
    with HttpsReceiver(ca=receiver.ca) as new_receiver, Stack(settings) as stack:
        org_id = stack.organization(receiver.url)
        first, second = interview_message(org_id), interview_message(org_id)
        publish(broker_url, first, second)
        wait_for(lambda: receiver.requests, what="the first request")
        stack.application.change_webhook(org_id, OPERATOR, url=new_receiver.url)
        stack.wait_for_projection()
        delivery = stack.wait_for_outcome(org_id, second["event_id"])

        assert [r.headers["x-webhook-id"] for r in receiver.requests] == [first["event_id"]]
        assert [r.headers["x-webhook-id"] for r in new_receiver.requests] == [second["event_id"]]
        assert delivery.url == new_receiver.url


def test_the_same_event_id_twice_is_one_delivery_and_one_webhook(stack, receiver, broker_url):
    org_id = stack.organization(receiver.url)
    message = interview_message(org_id)

    publish(broker_url, message)
    publish(broker_url, message)
    delivery = stack.wait_for_outcome(org_id, message["event_id"])
    wait_for(lambda: not stack.dispatcher.in_flight, what="both messages to be handled")
    time.sleep(0.3)

    assert len(receiver.requests) == 1
    assert delivery.version == 3  # scheduled, attempted, succeeded: no second series
    stack.__exit__(None, None, None)
    assert queue_depth(broker_url, INTERVIEWS_QUEUE) == 0


def test_an_event_id_published_again_after_its_delivery_is_not_sent_again(
    stack, receiver, broker_url
):
    org_id = stack.organization(receiver.url)
    message = interview_message(org_id)
    publish(broker_url, message)
    first = stack.wait_for_outcome(org_id, message["event_id"])
    wait_for(lambda: not stack.dispatcher.in_flight, what="the first message to be acked")

    later = interview_message(org_id)
    publish(broker_url, message, later)  # the consumer claims them in this order
    stack.wait_for_outcome(org_id, later["event_id"])
    wait_for(lambda: not stack.dispatcher.in_flight, what="the duplicate to be handled")
    time.sleep(0.3)

    assert [r.headers["x-webhook-id"] for r in receiver.requests] == [
        message["event_id"],
        later["event_id"],
    ]
    again = stack.application.repository.get(first.id)
    assert (again.version, again.status) == (3, "succeeded")


# -- invalid messages ------------------------------------------------------------------------


def test_invalid_messages_are_dead_lettered_with_a_reason(stack, receiver, broker_url):
    org_id = stack.organization(receiver.url)
    not_json = b'{"event_id": "e1", '
    schema_invalid = interview_message(org_id, org_id="not-a-uuid")
    valid = interview_message(org_id)

    publish(broker_url, not_json)
    publish(broker_url, schema_invalid)
    publish(broker_url, valid)  # the consumer keeps going
    stack.wait_for_outcome(org_id, valid["event_id"])

    found = dead_letters(broker_url, expected=2)
    reasons = {body: headers["x-tenzo-error"] for body, headers in found}
    assert reasons[not_json].startswith("invalid JSON")
    assert reasons[json.dumps(schema_invalid).encode()] == (
        "invalid message: org_id: Not a valid UUID."
    )
    assert all(h["x-tenzo-queue"] == INTERVIEWS_QUEUE for _, h in found)
    assert [r.headers["x-webhook-id"] for r in receiver.requests] == [valid["event_id"]]


# -- isolation between organizations ---------------------------------------------------------


def test_a_hanging_endpoint_does_not_delay_another_organization(tmp_path, broker_url, receiver):
    settings = make_settings(tmp_path, broker_url, receiver.ca_pem_path, TENZO_WEBHOOK_TIMEOUT="30")
    with HttpsReceiver(ca=receiver.ca) as hanging:
        hanging.script(*[ScriptedResponse(delay=30)] * 20)
        with Stack(settings) as stack:
            slow_org = stack.organization(hanging.url)
            healthy_org = stack.organization(receiver.url)
            for _ in range(10):
                publish(broker_url, interview_message(slow_org))
            wait_for(
                lambda: len(hanging.requests) >= 1, what="the hanging endpoint's first request"
            )
            message = interview_message(healthy_org)
            published = time.monotonic()
            publish(broker_url, message)
            wait_for(
                lambda: requests_for(receiver, message["event_id"]), what="the healthy delivery"
            )
            elapsed = time.monotonic() - published

    assert elapsed < 1.0


def test_an_endpoint_answering_slowly_keeps_its_full_concurrency(tmp_path, broker_url, receiver):
    """Busy is not hanging: an endpoint that answers every request in 1.5 s gets as many
    attempts at once as TENZO_DISPATCHER_PER_ORG_CONCURRENCY allows, again and again."""
    settings = make_settings(
        tmp_path, broker_url, receiver.ca_pem_path, TENZO_DISPATCHER_PER_ORG_CONCURRENCY="6"
    )
    answer_late = ScriptedResponse(delay=1.5)
    with (
        HttpsReceiver(ca=receiver.ca, respond=lambda _: answer_late) as busy,
        Stack(settings) as stack,
    ):
        org = stack.organization(busy.url)
        first = [interview_message(org) for _ in range(6)]
        publish(broker_url, *first)
        for message in first:
            stack.wait_for_outcome(org, message["event_id"], timeout=30)
        # Every attempt so far took longer than a second, and answered.
        busy.most_in_flight = 0
        then = [interview_message(org) for _ in range(18)]
        publish(broker_url, *then)
        outcomes = [stack.wait_for_outcome(org, m["event_id"], timeout=60) for m in then]

    assert [delivery.status for delivery in outcomes] == ["succeeded"] * 18
    assert len(busy.requests) == 24  # one attempt each
    assert busy.most_in_flight == 6  # the whole per-organization bound, not 1


@pytest.mark.rabbitmq
@pytest.mark.parametrize("broker_url", ["rabbitmq"], indirect=True)
def test_a_hanging_endpoint_s_surplus_waits_on_the_broker_not_in_the_prefetch_window(
    tmp_path, broker_url, receiver
):
    settings = make_settings(tmp_path, broker_url, receiver.ca_pem_path, TENZO_WEBHOOK_TIMEOUT="30")
    deferred_before = REGISTRY.get_sample_value("tenzo_webhook_deferred_total") or 0
    with HttpsReceiver(ca=receiver.ca) as hanging:
        hanging.script(*[ScriptedResponse(delay=30)] * 50)
        with Stack(settings) as stack:
            slow_org = stack.organization(hanging.url)
            healthy_org = stack.organization(receiver.url)
            publish(broker_url, interview_message(slow_org))
            wait_for(lambda: hanging.requests, what="the hanging endpoint's first request")
            time.sleep(1.2)  # no answer for longer than hang_after: hanging now
            publish(broker_url, *[interview_message(slow_org) for _ in range(12)])
            message = interview_message(healthy_org)
            publish(broker_url, message)
            stack.wait_for_outcome(healthy_org, message["event_id"])

            # Beyond a few held deliveries, the slow organization's messages are set
            # aside on the broker and come back after the delay, again and again.
            def deferred() -> float:
                total = REGISTRY.get_sample_value("tenzo_webhook_deferred_total") or 0
                return total - deferred_before

            wait_for(lambda: deferred() >= 14, 15, "messages deferred, back, deferred again")
            assert stack.dispatcher.pool.backlog(slow_org) <= 5
            assert len(hanging.requests) == 1  # nothing more for an endpoint that hangs


@pytest.mark.rabbitmq
@pytest.mark.parametrize("broker_url", ["rabbitmq"], indirect=True)
def test_messages_trickling_in_under_load_are_read_from_the_projection_together(
    tmp_path, broker_url, receiver
):
    """Under load the broker sends a message for each one acked, one or two at a time.
    While the pool has enough work ready, those wait to be started together: one
    projection query for many, read just before they run (so never read again stale)."""
    settings = make_settings(
        tmp_path, broker_url, receiver.ca_pem_path, TENZO_DISPATCHER_PREFETCH="20"
    )
    with Stack(settings) as stack:
        orgs = [stack.organization(receiver.url) for _ in range(10)]
        stack.dispatcher.pool.active = 2  # few attempts at once: the pool's work queues up
        projection = stack.dispatcher.receiver.projection
        reads: list[int] = []
        read_contexts = projection.interview_contexts

        def counted(refs: Any) -> Any:
            reads.append(len(refs))
            return read_contexts(refs)

        projection.interview_contexts = counted  # the real query, counted
        messages = [interview_message(org) for _ in range(12) for org in orgs]
        receiver.script(*[ScriptedResponse(delay=0.05)] * len(messages))
        publish(broker_url, *messages)
        outcomes = [
            stack.wait_for_outcome(uuid.UUID(m["org_id"]), m["event_id"], timeout=60)
            for m in messages
        ]

    assert [delivery.status for delivery in outcomes] == ["succeeded"] * 120
    assert len(receiver.requests) == 120
    assert sum(reads) == 120  # each message's context read once
    # 10 reads here; 60 when each batch was what had trickled in since the last acks.
    assert len(reads) <= 20, reads


# -- test events and redelivery through the admin API --------------------------------------


def test_test_event_and_redelivery_through_the_admin_api(tmp_path, broker_url, receiver):
    from services.api.app import create_app
    from services.bootstrap import build_api

    settings = make_settings(tmp_path, broker_url, receiver.ca_pem_path)
    with Stack(settings) as stack:
        client = create_app(build_api(settings, stack.application)).test_client()
        org, token = stack.application.create_organization("Acme", OPERATOR)
        headers = {"Authorization": f"Bearer {token}"}
        assert (
            client.put(
                "/admin/v1/webhook",
                json={"url": receiver.url, "secret": SECRET, "enabled": True},
                headers=headers,
            ).status_code
            == 201
        )
        receiver.script(ScriptedResponse(status=503))

        sent = client.post("/admin/v1/webhook/test", headers=headers)
        assert sent.status_code == 202
        sent_body: Any = sent.json
        delivery_id = sent_body["delivery_id"]

        def ended():
            body: Any = client.get(f"/admin/v1/deliveries/{delivery_id}", headers=headers).json
            return body if body["status"] != "pending" else None

        first = wait_for(ended, 15, "the test delivery")
        assert first["status"] == "succeeded"
        assert [(a["number"], a["status_code"]) for a in first["attempts"]] == [(1, 503), (2, 200)]
        assert first["event_type"] == "webhook.test" and first["completed_at"]

        again = client.post(f"/admin/v1/deliveries/{delivery_id}/redeliver", headers=headers)
        again_body: Any = again.json
        assert again.status_code == 202 and again_body["status"] == "pending"
        wait_for(lambda: len(receiver.requests) == 3 and ended(), 15, "the redelivery")
        final = ended()
        assert [a["number"] for a in final["attempts"]] == [1, 2, 3]
        ids = {r.headers["x-webhook-id"] for r in receiver.requests}
        bodies = {r.body for r in receiver.requests}
        assert len(ids) == 1 and len(bodies) == 1  # same X-Webhook-Id and bytes throughout
        assert receiver.requests[-1].headers["x-webhook-attempt"] == "3"
        assert json.loads(receiver.requests[0].body)["event"] == "webhook.test"
        assert verify(
            SECRET, receiver.requests[-1].body, receiver.requests[-1].headers["x-webhook-signature"]
        )

        listed: Any = client.get("/admin/v1/deliveries?status=succeeded", headers=headers).json
        assert [item["id"] for item in listed["items"]] == [delivery_id]
        assert listed["next_cursor"] is None
        history: Any = client.get(
            f"/admin/v1/events?aggregate_id={delivery_id}", headers=headers
        ).json
        assert [item["type"] for item in history["items"]] == [
            "DeliveryScheduled",
            "DeliveryAttempted",
            "DeliveryAttempted",
            "DeliverySucceeded",
            "DeliveryRedeliveryRequested",
            "DeliveryAttempted",
            "DeliverySucceeded",
        ]


# -- projection --------------------------------------------------------------------------------


def test_the_projection_query_reads_many_messages_at_once(application):
    """On SQLite and PostgreSQL, one query for a batch of messages: each answer in
    order, with the webhook, the candidate and job when known, and whether the delivery
    exists already (what keeps a duplicate message from sending again)."""
    from domain.actors import DISPATCHER
    from domain.deliveries import Delivery
    from services.dispatcher.projection import DispatchProjection, InterviewRef, WebhookTarget

    projection = DispatchProjection(application)
    acme, _ = application.create_organization("Acme", OPERATOR)
    other, _ = application.create_organization("Other", OPERATOR)
    application.configure_webhook(
        acme.id, "https://acme.example.com/hooks", "s3cret-value", True, OPERATOR
    )
    projection.rebuild()
    delivery = Delivery(
        org_id=acme.id,
        event_id="evt-1",
        event_type="interview.completed",
        url="https://example.com/hooks",
        body="{}",
        actor=DISPATCHER,
    )
    refs = [
        InterviewRef(acme.id, "c", "j", delivery.id),
        InterviewRef(other.id, "c2", "j2", uuid.uuid4()),
    ]
    first, second = projection.interview_contexts(refs)
    assert not first.delivered and not second.delivered
    assert first.target is not None and first.target.url == "https://acme.example.com/hooks"
    assert first.target.secret == "s3cret-value"
    assert (first.candidate, first.job) == ({"id": "c"}, {"id": "j"})
    assert second.target is None and second.candidate == {"id": "c2"}

    application.save(delivery)
    assert [c.delivered for c in projection.interview_contexts(refs)] == [True, False]
    assert projection.interview_contexts([]) == []

    # Changes the projection has not heard of yet are read from the event store.
    application.change_webhook(acme.id, OPERATOR, url="https://acme.example.com/v2", enabled=False)
    job, _ = application.upsert_job(acme.id, {"title": "Backend engineer"}, OPERATOR)
    elsewhere, _ = application.upsert_job(other.id, {"title": "Not Acme's"}, OPERATOR)
    [now, not_acmes] = projection.interview_contexts(
        [
            InterviewRef(acme.id, "c", str(job.id), uuid.uuid4()),
            InterviewRef(acme.id, "c", str(elsewhere.id), uuid.uuid4()),
        ]
    )
    assert now.target == WebhookTarget("https://acme.example.com/v2", False, "s3cret-value")
    assert now.job == {"id": str(job.id), "external_id": None, "title": "Backend engineer"}
    assert not_acmes.job == {"id": str(elsewhere.id)}  # another organization's job


def test_projection_applies_each_event_at_most_once_and_rebuilds(tmp_path, receiver, monkeypatch):
    broker = f"filesystem://{tmp_path}/broker"
    settings = make_settings(tmp_path, broker, receiver.ca_pem_path)
    with Stack(settings) as stack:
        org_id = stack.organization(receiver.url, secret="first-secret")
        stack.application.change_webhook(org_id, OPERATOR, url=receiver.url_for("localhost"))
        stack.application.change_webhook(org_id, OPERATOR, secret="second-secret")
        stack.wait_for_projection()
        projection = stack.dispatcher.projection
        current = projection.webhook(org_id)
        assert current is not None
        assert (current.url, current.secret) == (receiver.url_for("localhost"), "second-secret")

        # An old event relayed again (at-least-once) changes nothing.
        old = stack.application.event_history(org_id, type="WebhookConfigured")[0]
        assert projection.apply(old) is False
        assert projection.webhook(org_id) == current

        def projected_webhooks() -> int:
            return len(projection.tables.read("SELECT webhook_id FROM tenzo_dispatch_webhooks"))

        with projection.tables.transaction() as cursor:
            cursor.execute("DELETE FROM tenzo_dispatch_webhooks")
        assert projected_webhooks() == 0

        for name, value in {
            "TENZO_DATABASE_URL": settings.database_url,
            "TENZO_BROKER_URL": broker,
            "TENZO_ENCRYPTION_KEY": settings.encryption_key,
        }.items():
            monkeypatch.setenv(name, value)
        result = CliRunner().invoke(main, ["projections", "rebuild"])
        assert result.exit_code == 0, result.output
        assert "Projection rebuilt up to position" in result.output
        assert projected_webhooks() == 1
        assert projection.webhook(org_id) == current

        # The secret is stored encrypted, never in plain text.
        with projection.tables.transaction(commit=False) as cursor:
            stored = cursor.execute("SELECT secret FROM tenzo_dispatch_webhooks").fetchone()
        assert "second-secret" not in stored["secret"]


def test_a_deleted_webhook_stops_deliveries(stack, receiver, broker_url):
    org_id = stack.organization(receiver.url)
    stack.application.delete_webhook(org_id, OPERATOR)
    stack.wait_for_projection()
    message = interview_message(org_id)

    publish(broker_url, message)
    wait_for(lambda: not stack.dispatcher.in_flight and stack.dispatcher.pool.waiting() == 0)
    time.sleep(0.3)

    assert receiver.requests == []
    assert stack.dispatcher.projection.webhook(org_id).enabled is False


# -- the production shape: PostgreSQL and RabbitMQ -------------------------------------------


@pytest.mark.postgres
@pytest.mark.rabbitmq
@pytest.mark.parametrize("broker_url", ["rabbitmq"], indirect=True)
def test_many_concurrent_deliveries_on_postgresql_share_saves(
    tmp_path, broker_url, receiver, postgres_url
):
    settings = make_settings(tmp_path, broker_url, receiver.ca_pem_path, database_url=postgres_url)
    with Stack(settings) as stack:
        orgs = [
            stack.application.create_organization(f"Org {i}", OPERATOR)[0].id for i in range(40)
        ]
        for org_id in orgs:
            stack.application.configure_webhook(org_id, receiver.url, SECRET, True, OPERATOR)
        stack.wait_for_projection()
        messages = [interview_message(org_id) for org_id in orgs for _ in range(3)]
        receiver.script(*[ScriptedResponse(delay=0.1)] * len(messages))  # overlap them
        publish(broker_url, *messages)
        for message in messages:
            stack.wait_for_outcome(uuid.UUID(message["org_id"]), message["event_id"])
        committer = stack.dispatcher.committer

    assert len(receiver.requests) == len(messages) == 120
    assert {r.headers["x-webhook-id"] for r in receiver.requests} == {
        m["event_id"] for m in messages
    }
    # 120 deliveries of one save each (scheduled + attempted + succeeded, on RabbitMQ)
    # took fewer transactions than that: concurrent deliveries shared them.
    assert committer.saved == 120
    assert committer.batches < 120


@pytest.mark.postgres
def test_event_store_connections_cut_while_messages_arrive(
    tmp_path, broker_url, receiver, postgres_url, caplog
):
    """PostgreSQL drops every connection of the dispatcher (a restart, a failover): the
    messages that arrive meanwhile wait in the dispatcher (not requeued: they would come
    back flagged redelivered, i.e. "resume") and are delivered, each sent once, at
    attempt 1."""
    import psycopg

    settings = make_settings(tmp_path, broker_url, receiver.ca_pem_path, database_url=postgres_url)
    with Stack(settings) as stack:
        org_id = stack.organization(receiver.url, secret=SECRET)
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            cut = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
        assert cut is not None and cut[0] > 0
        messages = [interview_message(org_id) for _ in range(5)]
        publish(broker_url, *messages)
        outcomes = [stack.wait_for_outcome(org_id, m["event_id"], timeout=30) for m in messages]

    assert "event store unavailable" in caplog.text  # the failed batch query was retried
    assert [delivery.status for delivery in outcomes] == ["succeeded"] * 5
    assert [[a["number"] for a in d.attempts] for d in outcomes] == [[1]] * 5
    assert sorted(r.headers["x-webhook-id"] for r in receiver.requests) == sorted(
        m["event_id"] for m in messages
    )  # each sent once


def test_json_no_reader_could_take_is_dead_lettered_and_the_dispatcher_goes_on(
    tmp_path, broker_url, receiver
):
    """Nesting deep enough to exhaust the reader's recursion (the dispatcher reconnected
    on it forever, delivering nothing) and a lone surrogate (no event could hold it):
    both dead-lettered with the reason, and the next interview is delivered."""
    settings = make_settings(tmp_path, broker_url, receiver.ca_pem_path)
    with Stack(settings) as stack:
        org_id = stack.organization(receiver.url, secret=SECRET)
        surrogate = interview_message(org_id)
        surrogate["data"]["summary"] = "half an emoji: \ud83d"
        deep = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
        publish(broker_url, surrogate, deep)
        reasons = {
            body[:20]: headers["x-tenzo-error"]
            for body, headers in dead_letters(broker_url, expected=2)
        }
        later = interview_message(org_id)
        publish(broker_url, later)
        assert stack.wait_for_outcome(org_id, later["event_id"]).status == "succeeded"

    assert sorted(reasons.values()) == [
        "invalid JSON: nested more than 32 levels deep",
        "invalid JSON: strings must not contain unpaired UTF-16 surrogates",
    ]
    assert [r.headers["x-webhook-id"] for r in receiver.requests] == [later["event_id"]]


@pytest.mark.postgres
def test_a_message_the_projection_query_refuses_is_dead_lettered_alone(
    tmp_path, broker_url, receiver, postgres_url
):
    """PostgreSQL refuses a NUL character in the batch query's JSON: that message ends in
    tenzo.dead-letter with the reason, the others of its batch are delivered, and the
    dispatcher keeps consuming."""
    settings = make_settings(tmp_path, broker_url, receiver.ca_pem_path, database_url=postgres_url)
    with Stack(settings) as stack:
        org_id = stack.organization(receiver.url, secret=SECRET)
        poison = interview_message(org_id)
        poison["data"]["candidate_id"] = "cand\u0000"
        good = [interview_message(org_id) for _ in range(3)]
        publish(broker_url, good[0], poison, *good[1:])
        outcomes = [stack.wait_for_outcome(org_id, m["event_id"]) for m in good]
        [(body, headers)] = dead_letters(broker_url, expected=1)
        later = interview_message(org_id)
        publish(broker_url, later)
        assert stack.wait_for_outcome(org_id, later["event_id"]).status == "succeeded"

    assert [delivery.status for delivery in outcomes] == ["succeeded"] * 3
    assert json.loads(body)["event_id"] == poison["event_id"]
    assert headers["x-tenzo-error"].startswith("cannot read: ")
    assert poison["event_id"] not in {r.headers["x-webhook-id"] for r in receiver.requests}


@pytest.mark.rabbitmq
def test_once_the_api_is_ready_an_interview_published_before_any_dispatcher_is_kept(
    settings_env, application, amqp_url
):
    """/readyz declares the exchange and the queues: a producer that publishes as soon
    as the service is ready, before any dispatcher has connected, loses nothing (a topic
    exchange drops what no queue is bound to)."""
    from services.api.app import create_app
    from services.bootstrap import build_api
    from services.settings import Settings

    dispatching.delete_topology(amqp_url)
    settings = Settings.from_env(settings_env | {"TENZO_BROKER_URL": amqp_url})
    client = create_app(build_api(settings, application)).test_client()
    assert client.get("/readyz").status_code == 200
    publish(amqp_url, interview_message(uuid.uuid4()))
    assert queue_depth(amqp_url, INTERVIEWS_QUEUE) == 1
    dispatching.delete_topology(amqp_url)
