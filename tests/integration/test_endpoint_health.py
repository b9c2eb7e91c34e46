"""Endpoint health and auto-disable (SPEC 10) on SQLite and PostgreSQL, and through the
dispatcher on both brokers against a real failing HTTPS receiver."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from domain.actors import OPERATOR
from domain.webhook_health import AutoDisableRule
from services.infrastructure.webhook_health import Signal, median_ms
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
from tests.support.https_receiver import ScriptedResponse

WEBHOOK = {"url": "https://93.184.215.14/webhooks/tenzo", "enabled": True}


@pytest.fixture
def settings_env(settings_env):
    return settings_env | {
        "TENZO_WEBHOOK_DISABLE_AFTER_FAILURES": "3",
        "TENZO_WEBHOOK_DISABLE_AFTER_HOURS": "0",
    }


def auto_disabled() -> float:
    return REGISTRY.get_sample_value("tenzo_webhooks_auto_disabled_total") or 0.0


def deliver(client, application, org, status_code):
    delivery_id = client.post("/admin/v1/webhook/test", headers=org.headers).json["delivery_id"]
    record_outcome(application, org.id, uuid.UUID(delivery_id), status_code)


# -- the rule and the median, without I/O ---------------------------------------------------


def test_the_rule_needs_both_the_count_and_the_age():
    rule = AutoDisableRule(failures=3, hours=2)
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)

    assert rule.reason(2, now - timedelta(hours=5), now) is None
    assert rule.reason(3, now - timedelta(hours=1), now) is None
    reason = rule.reason(3, now - timedelta(hours=2), now)
    assert reason is not None and "the last 3 deliveries all failed" in reason
    assert "2026-12-06 10:00:00 UTC" in reason


def test_the_median_is_interpolated_inside_its_bucket():
    assert median_ms({}) is None
    # 4 attempts in (20, 50] ms: the median lies half-way into that bucket.
    assert median_ms({3: 4}) == 35
    assert median_ms({0: 1, 13: 3}) == 60000  # mostly past the last bound


# -- health from the projection -----------------------------------------------------------


def test_health_counts_the_last_24_hours_and_the_streak(client, application, org):
    client.put("/admin/v1/webhook", json=WEBHOOK, headers=org.headers)
    empty = client.get("/admin/v1/webhook", headers=org.headers).json
    assert empty["health"] == {
        "deliveries_24h": 0, "succeeded_24h": 0, "failed_24h": 0, "success_rate_24h": None,
        "consecutive_failures": 0, "last_success_at": None, "last_failure_at": None,
        "p50_ms_24h": None,
    }  # fmt: skip
    assert empty["disabled_reason"] is None

    deliver(client, application, org, 204)
    deliver(client, application, org, 500)
    deliver(client, application, org, 200)
    deliver(client, application, org, 503)
    health = client.get("/admin/v1/webhook", headers=org.headers).json["health"]

    assert health["deliveries_24h"] == 4
    assert health["succeeded_24h"] == 2 and health["failed_24h"] == 2
    assert health["success_rate_24h"] == 0.5
    assert health["consecutive_failures"] == 1
    assert health["last_success_at"] < health["last_failure_at"]
    # record_outcome's attempts take 12 ms: all four in (10, 20], the median half-way.
    assert health["p50_ms_24h"] == 15


def test_a_batch_adds_to_the_counts_an_earlier_batch_stored(application):
    """Several organizations in each batch, over the rows the batch before stored (one
    statement per table on PostgreSQL): the hours and the latency buckets add up, the
    streaks carry on, and a success empties the failing-since time."""
    catalog = application.catalog
    now = datetime.now(UTC)
    first, second, third = sorted(str(uuid.uuid4()) for _ in range(3))
    failures = [
        Signal(org, kind, now, duration)
        for org in (first, second, third)
        for kind, duration in (("attempt", 30), ("failed", None))
    ]
    recovery = [Signal(first, "attempt", now, 30), Signal(first, "succeeded", now)]

    for batch in (failures, failures, recovery):
        with catalog.tables.transaction() as cursor:
            catalog.health.apply(cursor, batch)

    recovered = catalog.webhook_health(uuid.UUID(first), now)
    assert (recovered.succeeded_24h, recovered.failed_24h) == (1, 2)
    assert recovered.consecutive_failures == 0 and recovered.failing_since is None
    assert recovered.p50_ms_24h == 35  # three attempts in (20, 50] ms
    for org in (second, third):
        failing = catalog.webhook_health(uuid.UUID(org), now)
        assert (failing.succeeded_24h, failing.failed_24h) == (0, 2)
        assert failing.consecutive_failures == 2
        assert failing.failing_since == now and failing.last_failure_at == now
    attempts = catalog.tables.read(
        "SELECT org_id, SUM(attempts) AS attempts FROM tenzo_webhook_latency_hours GROUP BY org_id"
    )
    assert {row["org_id"]: int(row["attempts"]) for row in attempts} == {
        first: 3,
        second: 2,
        third: 2,
    }


def test_hourly_rows_older_than_two_days_are_deleted(application):
    """The hourly tables keep 48 hours: older rows go (the 24-hour figures are those of
    the rows kept), newer ones stay."""
    catalog = application.catalog
    now = datetime.now(UTC)
    org = str(uuid.uuid4())
    old, recent = now - timedelta(hours=49), now - timedelta(hours=47)
    batch = [
        Signal(org, kind, at, duration)
        for at in (old, recent, now)
        for kind, duration in (("attempt", 30), ("succeeded", None))
    ]
    with catalog.tables.transaction() as cursor:
        catalog.health.apply(cursor, batch)

    for table in ("tenzo_webhook_health_hours", "tenzo_webhook_latency_hours"):
        rows = catalog.tables.read(f"SELECT hour FROM {table} WHERE org_id = :org", {"org": org})  # noqa: S608
        hours = sorted(int(row["hour"]) for row in rows)
        assert hours == [int(at.timestamp() // 3600) for at in (recent, now)], table
    assert catalog.webhook_health(uuid.UUID(org), now).succeeded_24h == 1


def test_health_is_per_organization(client, application, org, other_org):
    for each in (org, other_org):
        client.put("/admin/v1/webhook", json=WEBHOOK, headers=each.headers)
    deliver(client, application, org, 500)

    theirs = client.get("/admin/v1/webhook", headers=other_org.headers).json["health"]

    assert theirs["deliveries_24h"] == 0 and theirs["consecutive_failures"] == 0


# -- auto-disable -----------------------------------------------------------------------------


def test_consecutive_failures_disable_the_webhook_with_a_reason(client, application, org):
    client.put("/admin/v1/webhook", json=WEBHOOK, headers=org.headers)
    before = auto_disabled()
    deliver(client, application, org, 500)
    deliver(client, application, org, 204)  # a success ends the streak
    deliver(client, application, org, 500)
    deliver(client, application, org, 502)
    assert application.get_webhook(org.id).enabled

    deliver(client, application, org, 503)

    wait_for(lambda: not application.get_webhook(org.id).enabled, what="the auto-disable")
    shown = client.get("/admin/v1/webhook", headers=org.headers).json
    assert shown["enabled"] is False
    assert "the last 3 deliveries all failed" in shown["disabled_reason"]
    assert shown["health"]["consecutive_failures"] == 3
    [disabled] = [
        i for i in application.event_history(org.id, limit=1000) if i["type"] == "WebhookDisabled"
    ]
    assert disabled["actor"] == {"type": "system", "id": None}
    assert disabled["data"]["reason"] == shown["disabled_reason"]
    assert auto_disabled() == before + 1

    # Enabling it again clears the count and the reason.
    enabled = client.patch("/admin/v1/webhook", json={"enabled": True}, headers=org.headers)
    assert enabled.status_code == 200
    again = client.get("/admin/v1/webhook", headers=org.headers).json
    assert again["disabled_reason"] is None and again["health"]["consecutive_failures"] == 0


def test_a_person_switching_it_off_gives_no_reason(client, application, org):
    client.put("/admin/v1/webhook", json=WEBHOOK, headers=org.headers)
    client.patch("/admin/v1/webhook", json={"enabled": False}, headers=org.headers)

    assert client.get("/admin/v1/webhook", headers=org.headers).json["disabled_reason"] is None


def test_failures_younger_than_the_hours_do_not_disable(tmp_path, application, org):
    rule = AutoDisableRule(failures=1, hours=1)
    application.configure_webhook(org.id, WEBHOOK["url"], None, True, OPERATOR)
    before = history(application)

    assert not application.disable_failing_webhook(org.id, 5, application.clock(), rule)
    assert history(application) == before
    long_ago = application.clock() - timedelta(hours=2)
    assert application.disable_failing_webhook(org.id, 5, long_ago, rule)
    assert not application.disable_failing_webhook(org.id, 6, long_ago, rule)  # once


def test_the_webhooks_page_shows_health_and_a_banner_with_one_click_re_enable(
    client, application, org
):
    from tests.integration.test_dashboard import Page

    page = Page(client)
    page.sign_in(org.admin_token)
    client.put("/admin/v1/webhook", json=WEBHOOK, headers=org.headers)
    healthy = page.get("/webhook").get_data(as_text=True)
    assert "Endpoint health" in healthy and "Nothing delivered yet" in healthy
    assert "Send a test event" in healthy and 'id="auto-disabled"' not in healthy
    deliver(client, application, org, 204)
    for _ in range(3):
        deliver(client, application, org, 500)
    wait_for(lambda: not application.get_webhook(org.id).enabled, what="the auto-disable")

    shown = page.get("/webhook").get_data(as_text=True)

    assert 'id="auto-disabled"' in shown and 'role="alert"' in shown
    assert "the last 3 deliveries all failed" in shown
    assert 'id="health-deliveries">4 (1 succeeded, 3 failed)' in shown
    assert 'id="health-rate">25.0 %' in shown and 'id="health-streak">3<' in shown
    answer = page.post("/webhook/enabled", {"enabled": "true"})
    assert answer.status_code == 302
    assert application.get_webhook(org.id).enabled
    again = page.get("/webhook").get_data(as_text=True)
    assert 'id="auto-disabled"' not in again and 'id="health-streak">0<' in again


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TENZO_WEBHOOK_DISABLE_AFTER_FAILURES", "0"),
        ("TENZO_WEBHOOK_DISABLE_AFTER_FAILURES", "many"),
        ("TENZO_WEBHOOK_DISABLE_AFTER_HOURS", "-1"),
    ],
)
def test_bad_thresholds_are_refused_at_start(name, value):
    from services.settings import ConfigurationError, Settings

    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({name: value, "TENZO_DATABASE_URL": "sqlite:///:memory:"})


# -- through the dispatcher, on both brokers ---------------------------------------------------

broker_url = dispatching.broker_url
receiver = dispatching.receiver


def test_a_failing_endpoint_is_disabled_and_the_event_reaches_the_broker(
    tmp_path, broker_url, receiver
):
    settings = make_settings(
        tmp_path,
        broker_url,
        receiver.ca_pem_path,
        TENZO_WEBHOOK_RETRY_DELAYS="0",
        TENZO_WEBHOOK_DISABLE_AFTER_FAILURES="2",
        TENZO_WEBHOOK_DISABLE_AFTER_HOURS="0",
    )
    receiver.respond = lambda request: ScriptedResponse(status=500, body=b"down")
    with Stack(settings) as stack:
        org_id = stack.organization(receiver.url)
        messages = [interview_message(org_id) for _ in range(2)]
        for message in messages:
            publish(broker_url, message)
            assert stack.wait_for_outcome(org_id, message["event_id"]).status == "failed"

        wait_for(lambda: not stack.application.get_webhook(org_id).enabled, what="the auto-disable")
        # The dispatcher's projection hears of it through the broker, like any change.
        wait_for(
            lambda: not stack.dispatcher.projection.webhook(org_id).enabled,
            what="the projection to see the webhook disabled",
        )
        # Switched off by the system, with the reason, like the API-level rule says.
        [disabled] = [
            item
            for item in stack.application.event_history(org_id, limit=1000)
            if item["type"] == "WebhookDisabled"
        ]
        assert disabled["actor"] == {"type": "system", "id": None}
        assert "the last 2 deliveries all failed" in disabled["data"]["reason"]
