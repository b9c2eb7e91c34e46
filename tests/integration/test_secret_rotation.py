"""Rotating the webhook secret with an overlap (SPEC 9), end to end on both brokers.

A real HTTPS receiver on loopback verifies every request with the ``standardwebhooks``
package, holding the old secret until a random moment inside the overlap and the new
one after it, as a receiver switching its configuration would: during the overlap no
request may fail to verify, whatever the kind of attempt (first attempts, retries, a
redelivery, a test event). After the overlap (the application's clock moved past it)
the previous secret is forgotten, with an event, and signs nothing more.
"""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from contracts.signing import standard_webhooks_secret, verify
from domain.actors import OPERATOR
from tests.support import dispatching
from tests.support.dispatching import Stack, interview_message, make_settings, publish, wait_for
from tests.support.https_receiver import HttpsReceiver, ReceivedRequest, ScriptedResponse

OLD_SECRET = "an-old-plain-secret"  # not in whsec_ form: keyed with its UTF-8 bytes
# The dispatcher's sweeper, which forgets expired secrets, runs every third of
# TENZO_DISPATCHER_STALLED_AFTER (0.5 s at the least, 10 s at the most): 1.5 s has it run
# every 0.5 s instead of every 10 s (the default margin, the webhook timeout + 30 s).
SWEEPING_OFTEN = {"TENZO_DISPATCHER_STALLED_AFTER": "1.5"}

broker_url = dispatching.broker_url  # fixtures: every test on both brokers


class SwitchingReceiver:
    """Verifies each request with the secret it holds at that moment (either as the
    whsec_ string the dashboard or the API gave), answering 401 when that fails and 500
    to the first attempt of the events in ``fail_first`` (so they are retried)."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.fail_first: set[str] = set()
        self.failures: list[tuple[str, str]] = []  # (event id, secret held)
        self.verified: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def hold(self, secret: str) -> None:
        with self.lock:
            self.secret = secret

    def __call__(self, request: ReceivedRequest) -> ScriptedResponse:
        with self.lock:
            secret = self.secret
        event_id = request.headers.get("webhook-id", "")
        try:
            StandardWebhook(standard_webhooks_secret(secret)).verify(request.body, request.headers)
        except WebhookVerificationError:
            with self.lock:
                self.failures.append((event_id, secret))
            return ScriptedResponse(status=401, body=b"bad signature")
        with self.lock:
            self.verified.append((event_id, secret))
        if event_id in self.fail_first and request.headers.get("x-webhook-attempt") == "1":
            return ScriptedResponse(status=500, body=b"try again")
        return ScriptedResponse()


@pytest.fixture
def switching(tmp_path):
    checks = SwitchingReceiver(OLD_SECRET)
    with HttpsReceiver(directory=tmp_path, respond=checks) as receiver:
        yield receiver, checks


@pytest.fixture
def stack(tmp_path, broker_url, switching):
    receiver, _ = switching
    with Stack(make_settings(tmp_path, broker_url, receiver.ca_pem_path)) as running:
        yield running


@pytest.fixture
def sweeping_stack(tmp_path, broker_url, switching):
    """The stack, its sweeper running every 0.5 s (SWEEPING_OFTEN)."""
    receiver, _ = switching
    settings = make_settings(tmp_path, broker_url, receiver.ca_pem_path, **SWEEPING_OFTEN)
    with Stack(settings) as running:
        yield running


def test_a_receiver_switching_secrets_inside_the_overlap_never_fails(stack, switching, broker_url):
    receiver, checks = switching
    application = stack.application
    org_id = stack.organization(receiver.url, secret=OLD_SECRET)
    _, new_secret, expires_at = application.rotate_webhook_secret(org_id, OPERATOR)
    assert new_secret is not None and new_secret.startswith("whsec_")
    assert expires_at is not None
    stack.wait_for_projection()

    messages = [interview_message(org_id) for _ in range(12)]
    checks.fail_first = {m["event_id"] for m in messages[::3]}  # these are retried
    switch_after = random.randrange(1, len(messages))  # a random moment in the overlap
    for number, message in enumerate(messages, start=1):
        publish(broker_url, message)
        if number == switch_after:
            wait_for(lambda: len(receiver.requests) >= switch_after, 15, "the deliveries so far")
            checks.hold(new_secret)
    delivered = [stack.wait_for_outcome(org_id, m["event_id"]) for m in messages]

    # A redelivery and a test event, also inside the overlap, by a receiver that may
    # hold either secret: each is verified with both.
    checks.hold(OLD_SECRET)
    application.request_redelivery(org_id, delivered[0].id, OPERATOR)
    test_event = application.send_test_event(org_id, OPERATOR)
    wait_for(lambda: _ended(application, org_id, [delivered[0].id, test_event.id]), 15, "them")
    checks.hold(new_secret)
    again = application.request_redelivery(org_id, delivered[1].id, OPERATOR)
    wait_for(lambda: _ended(application, org_id, [again.id]), 15, "the second redelivery")

    assert checks.failures == []
    assert all(d.status == "succeeded" for d in delivered)
    retried = [r for r in receiver.requests if r.headers["x-webhook-attempt"] != "1"]
    assert len(retried) >= len(checks.fail_first) + 2  # the retries and the redeliveries
    assert {secret for _, secret in checks.verified} == {OLD_SECRET, new_secret}
    for request in receiver.requests:  # every one double-signed, the new secret's first
        headers = request.headers
        new, old = headers["webhook-signature"].split(" ")
        for secret, signature in ((new_secret, new), (OLD_SECRET, old)):
            assert verify(
                secret,
                request.body,
                signature,
                msg_id=headers["webhook-id"],
                timestamp=headers["webhook-timestamp"],
            )
        assert verify(new_secret, request.body, headers["x-webhook-signature"])
        assert not verify(OLD_SECRET, request.body, headers["x-webhook-signature"])


def test_after_the_overlap_the_old_secret_is_forgotten_and_fails(
    sweeping_stack, switching, broker_url
):
    stack = sweeping_stack
    receiver, checks = switching
    application = stack.application
    org_id = stack.organization(receiver.url, secret=OLD_SECRET)
    new_secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # given, Standard Webhooks form
    _, generated, expires_at = application.rotate_webhook_secret(
        org_id, OPERATOR, secret=new_secret, overlap_hours=1
    )
    assert generated is None and expires_at is not None
    stack.wait_for_projection()
    checks.hold(new_secret)
    inside = interview_message(org_id)
    publish(broker_url, inside)
    assert stack.wait_for_outcome(org_id, inside["event_id"]).status == "succeeded"

    # The overlap ends: the dispatcher's sweeper records that the old secret is forgotten.
    shift = expires_at - datetime.now(UTC) + timedelta(seconds=1)
    application.clock = lambda: datetime.now(UTC) + shift
    forgotten = wait_for(
        lambda: application.event_history(org_id, type="WebhookPreviousSecretForgotten"),
        15,
        "the previous secret to be forgotten",
    )
    assert [item["actor"]["type"] for item in forgotten] == ["dispatcher"]
    webhook = application.get_webhook(org_id)
    assert (webhook.secret, webhook.previous_secret) == (new_secret, None)

    checks.hold(OLD_SECRET)
    after = interview_message(org_id)
    publish(broker_url, after)
    assert stack.wait_for_outcome(org_id, after["event_id"]).status == "failed"
    assert {event_id for event_id, _ in checks.failures} == {after["event_id"]}
    [*_, last] = receiver.requests
    assert len(last.headers["webhook-signature"].split(" ")) == 1  # the new secret's only
    StandardWebhook(new_secret).verify(last.body, last.headers)  # raises if not
    with pytest.raises(WebhookVerificationError):
        StandardWebhook(standard_webhooks_secret(OLD_SECRET)).verify(last.body, last.headers)


def _ended(application, org_id, delivery_ids) -> bool:
    deliveries = [application.get_delivery(org_id, delivery_id) for delivery_id in delivery_ids]
    return all(d.status != "pending" for d in deliveries)
