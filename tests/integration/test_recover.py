"""Recovering failed deliveries (SPEC 10): the admin API and the CLI on SQLite and
PostgreSQL, and through the dispatcher on both brokers, where one organization's
recovery of many deliveries does not hold up another organization's new deliveries."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from domain.actors import DISPATCHER, OPERATOR
from domain.deliveries import Delivery
from services.cli.main import main
from tests.conftest import history
from tests.support import dispatching
from tests.support.dispatching import (
    Stack,
    interview_message,
    make_settings,
    publish,
    record_outcome,
    wait_for,
)
from tests.support.https_receiver import HttpsReceiver, ScriptedResponse

WEBHOOK = {"url": "https://93.184.215.14/webhooks/tenzo", "enabled": True}


def failed_test_event(client, application, org) -> uuid.UUID:
    delivery_id = client.post("/admin/v1/webhook/test", headers=org.headers).json["delivery_id"]
    record_outcome(application, org.id, uuid.UUID(delivery_id), 500)
    return uuid.UUID(delivery_id)


def test_recover_redelivers_the_failed_deliveries_of_the_window(client, application, org):
    client.put("/admin/v1/webhook", json=WEBHOOK, headers=org.headers)
    before_window = failed_test_event(client, application, org)
    time.sleep(0.01)
    since = datetime.now(UTC)
    failed = [failed_test_event(client, application, org) for _ in range(3)]
    succeeded = uuid.UUID(
        client.post("/admin/v1/webhook/test", headers=org.headers).json["delivery_id"]
    )
    record_outcome(application, org.id, succeeded, 204)

    answer = client.post(
        "/admin/v1/deliveries/recover", json={"since": since.isoformat()}, headers=org.headers
    )

    assert answer.status_code == 202 and answer.json == {"count": 3}
    for delivery_id in failed:
        shown = client.get(f"/admin/v1/deliveries/{delivery_id}", headers=org.headers).json
        assert shown["status"] == "pending" and shown["run"] == 2
        types = [i["type"] for i in application.event_history(org.id, aggregate_id=delivery_id)]
        assert types[-1] == "DeliveryRedeliveryRequested"
    assert application.get_delivery(org.id, before_window).status == "failed"
    assert application.get_delivery(org.id, succeeded).status == "succeeded"
    # Nothing is left to recover: a second call finds none.
    again = client.post(
        "/admin/v1/deliveries/recover", json={"since": since.isoformat()}, headers=org.headers
    )
    assert again.json == {"count": 0}


def test_until_closes_the_window(client, application, org):
    client.put("/admin/v1/webhook", json=WEBHOOK, headers=org.headers)
    since = datetime.now(UTC) - timedelta(seconds=1)
    early = failed_test_event(client, application, org)
    time.sleep(0.01)
    until = datetime.now(UTC)
    failed_test_event(client, application, org)

    answer = client.post(
        "/admin/v1/deliveries/recover",
        json={"since": since.isoformat(), "until": until.isoformat()},
        headers=org.headers,
    )

    assert answer.json == {"count": 1}
    assert application.get_delivery(org.id, early).status == "pending"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"since": "yesterday"},
        {"since": "2026-12-06T10:00:00Z", "until": "2026-12-06T09:00:00Z"},
        {"since": "2026-12-06T10:00:00Z", "status": "failed"},
    ],
)
def test_bad_input_is_422_and_changes_nothing(client, application, org, body):
    client.put("/admin/v1/webhook", json=WEBHOOK, headers=org.headers)
    failed_test_event(client, application, org)
    before = history(application)

    answer = client.post("/admin/v1/deliveries/recover", json=body, headers=org.headers)

    assert answer.status_code == 422
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert history(application) == before


def test_a_disabled_webhook_is_409_and_changes_nothing(client, application, org):
    client.put("/admin/v1/webhook", json=WEBHOOK, headers=org.headers)
    failed_test_event(client, application, org)
    client.patch("/admin/v1/webhook", json={"enabled": False}, headers=org.headers)
    before = history(application)

    answer = client.post(
        "/admin/v1/deliveries/recover",
        json={"since": "2020-01-01T00:00:00Z"},
        headers=org.headers,
    )

    assert answer.status_code == 409
    assert history(application) == before


def test_only_the_callers_deliveries_are_recovered(client, application, org, other_org):
    for each in (org, other_org):
        client.put("/admin/v1/webhook", json=WEBHOOK, headers=each.headers)
    theirs = failed_test_event(client, application, other_org)

    answer = client.post(
        "/admin/v1/deliveries/recover",
        json={"since": "2020-01-01T00:00:00Z"},
        headers=org.headers,
    )

    assert answer.json == {"count": 0}
    assert application.get_delivery(other_org.id, theirs).status == "failed"


def test_the_cli_recovers_with_a_progress_bar(client, application, org, settings_env):
    client.put("/admin/v1/webhook", json=WEBHOOK, headers=org.headers)
    since = datetime.now(UTC) - timedelta(seconds=1)
    failed = [failed_test_event(client, application, org) for _ in range(2)]

    ran = CliRunner().invoke(
        main,
        ["deliveries", "recover", "--org", str(org.id), "--since", since.isoformat()],
        env=settings_env,
    )

    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.stdout.strip().splitlines()[-1]) == {"count": 2}
    assert "Redelivering" in ran.stderr
    assert all(application.get_delivery(org.id, d).status == "pending" for d in failed)
    refused = CliRunner().invoke(
        main,
        ["deliveries", "recover", "--org", str(org.id), "--since", "soon"],
        env=settings_env,
    )
    assert refused.exit_code == 2 and "--since" in refused.output


def test_the_page_says_how_many_and_recovers_once(client, application, org):
    from tests.integration.test_dashboard import Page

    page = Page(client)
    page.sign_in(org.admin_token)
    client.put("/admin/v1/webhook", json=WEBHOOK, headers=org.headers)
    failed = [failed_test_event(client, application, org) for _ in range(2)]

    confirm = page.get("/deliveries/recover?hours=1").get_data(as_text=True)
    assert "Redeliver 2 failed deliveries?" in confirm
    answer = page.post("/deliveries/recover", {"since": _hidden_since(confirm)})
    assert answer.status_code == 302  # Post/Redirect/Get
    listed = page.get("/deliveries").get_data(as_text=True)
    assert "2 failed deliveries are being sent again" in listed
    recorded = history(application)
    assert all(application.get_delivery(org.id, d).status == "pending" for d in failed)
    assert "Nothing to recover" in page.get("/deliveries/recover?hours=1").get_data(as_text=True)
    assert history(application) == recorded


def _hidden_since(html: str) -> str:
    marker = 'name="since" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


# -- fairness, through the dispatcher on both brokers -------------------------------------------

broker_url = dispatching.broker_url
MANY = 300


def test_a_large_recovery_does_not_hold_up_another_organizations_deliveries(tmp_path, broker_url):
    (tmp_path / "slow").mkdir()
    (tmp_path / "fast").mkdir()
    with (
        HttpsReceiver(directory=tmp_path / "slow") as slow,
        HttpsReceiver(directory=tmp_path / "fast", ca=slow.ca) as fast,
    ):
        settings = make_settings(
            tmp_path, broker_url, slow.ca_pem_path, TENZO_WEBHOOK_RETRY_DELAYS="0"
        )
        with Stack(settings) as stack:
            application = stack.application
            recovering = stack.organization(slow.url)
            other = stack.organization(fast.url)
            _failed_deliveries(application, recovering, slow.url, MANY)
            # The recovering organization's endpoint now answers, slowly.
            slow.respond = lambda request: ScriptedResponse(status=200, delay=0.1)

            ids = application.failed_delivery_ids(recovering, datetime(2020, 1, 1, tzinfo=UTC))
            assert len(ids) == MANY
            assert application.recover_deliveries(recovering, ids, OPERATOR) == MANY
            wait_for(lambda: slow.requests, timeout=15, what="the recovery to start")
            messages = [interview_message(other) for _ in range(5)]
            publish(broker_url, *messages)
            for message in messages:
                assert stack.wait_for_outcome(other, message["event_id"]).status == "succeeded"

            # The other organization's deliveries ended while the recovery was far
            # from done: they did not wait behind it.
            assert len(slow.requests) < MANY // 2
            wait_for(lambda: len(slow.requests) >= MANY, timeout=120, what="the whole recovery")
            wait_for(
                lambda: all(
                    application.get_delivery(recovering, d).status == "succeeded" for d in ids
                ),
                timeout=30,
                what="every recovered delivery to succeed",
            )


def _failed_deliveries(application, org_id, url, count) -> None:
    """``count`` deliveries that failed, saved as the dispatcher would, 100 per save."""
    for first in range(0, count, 100):
        batch = []
        for _ in range(min(100, count - first)):
            event_id = str(uuid.uuid4())
            delivery = Delivery(
                org_id=org_id,
                event_id=event_id,
                event_type="interview.completed",
                url=url,
                body=json.dumps({"id": event_id}),
                actor=DISPATCHER,
            )
            delivery.record_attempt(
                started_at=application.clock(),
                status_code=None,
                duration_ms=3,
                error="connection refused",
                response_excerpt="",
                actor=DISPATCHER,
            )
            delivery.fail(reason="1 attempts failed", actor=DISPATCHER)
            batch.append(delivery)
        application.save(*batch)
