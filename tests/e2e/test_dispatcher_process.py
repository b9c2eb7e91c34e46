"""`tenzo dispatcher` as a real process: killed with SIGKILL during a retry delay, it
resumes the delivery when started again, numbering the next attempt after the last one
recorded (SPEC 7), on RabbitMQ (the broker redelivers the unacked message) and on the
embedded broker (the dispatcher resumes pending deliveries from the event store)."""

from __future__ import annotations

import os
import time

from domain.actors import OPERATOR
from domain.errors import NotFound
from services.bootstrap import build_application
from tests.support import dispatching
from tests.support.dispatching import ENCRYPTION_KEY, interview_message, publish, wait_for
from tests.support.fault_runs import TenzoProcess
from tests.support.https_receiver import ScriptedResponse

broker_url = dispatching.broker_url  # fixtures: on both brokers
receiver = dispatching.receiver


def test_a_dispatcher_killed_during_the_backoff_resumes_with_attempt_two(
    tmp_path, broker_url, receiver
):
    env = {
        "PATH": os.environ.get("PATH", ""),
        "TENZO_DATABASE_URL": f"sqlite:///{tmp_path}/events.sqlite3",
        "TENZO_BROKER_URL": broker_url,
        "TENZO_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "TENZO_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
        "TENZO_WEBHOOK_CA_BUNDLE": receiver.ca_pem_path,
        # TENZO_WEBHOOK_RETRY_DELAYS is left at its default: 0, 2, 4 seconds.
    }
    from services.settings import Settings

    application = build_application(Settings.from_env(env))
    organization, _ = application.create_organization("Acme", OPERATOR)
    application.configure_webhook(organization.id, receiver.url, "whsec-e2e-secret", True, OPERATOR)
    receiver.script(ScriptedResponse(status=500, body=b"try again"))
    dispatcher = TenzoProcess("dispatcher", env)
    try:
        dispatcher.start()
        message = interview_message(organization.id)
        publish(broker_url, message)

        def attempted() -> bool:
            try:
                delivery = application.get_delivery(
                    organization.id, _delivery_id(organization.id, message)
                )
            except NotFound:
                return False
            return len(delivery.attempts) == 1

        wait_for(attempted, 15, "attempt 1 to be recorded")
        time.sleep(0.3)  # well inside the 2 s delay before attempt 2
        dispatcher.kill()
        killed_at = time.monotonic()
        assert len(receiver.requests) == 1

        dispatcher.start()
        wait_for(lambda: len(receiver.requests) == 2, 15, "attempt 2 after the restart")
        if broker_url.startswith("filesystem"):  # resumed from the event store
            assert any("resuming delivery" in line for line in dispatcher.lines)
        delivery = wait_for(
            lambda: (
                (
                    d := application.get_delivery(
                        organization.id, _delivery_id(organization.id, message)
                    )
                ).status
                != "pending"
                and d
            ),
            15,
            "the outcome",
        )
    finally:
        dispatcher.stop()
        application.close()

    first, second = receiver.requests
    assert first.headers["x-webhook-attempt"] == "1"
    assert second.headers["x-webhook-attempt"] == "2"
    assert first.headers["x-webhook-id"] == second.headers["x-webhook-id"] == message["event_id"]
    assert first.body == second.body
    assert delivery.status == "succeeded"
    assert [(a["number"], a["status_code"]) for a in delivery.attempts] == [(1, 500), (2, 200)]
    gap = (delivery.attempts[1]["started_at"] - delivery.attempts[0]["started_at"]).total_seconds()
    assert gap >= 1.95  # the rest of the 2 s delay was still waited after the restart
    assert time.monotonic() - killed_at < 15


def _delivery_id(org_id, message):
    from domain.deliveries import delivery_id

    return delivery_id(org_id, message["event_id"])
