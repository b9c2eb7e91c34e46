"""The webhook secret in a real headless Chromium (SPEC 9): generate, rotate with an
overlap, remove after a confirmation. After generating and after rotating, reloading
and going Back never rotate again (the history's events are counted) nor show the
secret again; a test event sent during the overlap carries both signatures, which the
``standardwebhooks`` package verifies with either secret.

The server, the receiver and the browser are tests/e2e/test_dashboard.py's."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import requests
from playwright.sync_api import expect
from standardwebhooks.webhooks import Webhook

from tests.e2e.test_dashboard import (
    Tab,
    browser,
    fresh_enabled_webhook,
    receiver,
    server,
    tab,
)
from tests.support.https_receiver import HttpsReceiver

__all__ = ["browser", "receiver", "server", "tab"]  # fixtures

pytestmark = pytest.mark.browser

SECRET_EVENTS = (
    "WebhookConfigured",
    "WebhookReplaced",
    "WebhookSecretChanged",
    "WebhookSecretRotated",
    "WebhookDeleted",
)


def secret_events(tab: Tab) -> Counter[str]:
    """How many of each event that sets a secret the organization's history holds."""
    server = tab.server
    answer = requests.get(
        server.url("/admin/v1/events?limit=1000"),
        headers={"Authorization": f"Bearer {server.admin_token}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return Counter(item["type"] for item in answer.json()["items"] if item["type"] in SECRET_EVENTS)


def reload_and_back(tab: Tab, revealed: str) -> None:
    """Reload, go Back, reload: no secret event is recorded and ``revealed`` never shows."""
    page = tab.page
    recorded = secret_events(tab)
    for step in (page.reload, page.go_back, page.reload):
        step()
        page.wait_for_load_state("load")
        assert revealed not in page.content()
        assert page.get_by_label("New webhook secret").count() == 0
    assert secret_events(tab) == recorded, "a reload or Back repeated a form's action"


def test_generate_rotate_and_remove_the_secret_reloading_and_going_back(
    tab: Tab, receiver: HttpsReceiver
) -> None:
    page = tab.page
    tab.sign_in()
    first = fresh_enabled_webhook(tab, receiver.url)  # "Generate": shown once
    assert first.startswith("whsec_")
    reload_and_back(tab, first)

    tab.open_tab("Webhooks")
    expect(page.locator("#previous-secret")).to_have_count(0)
    page.get_by_label("Previous secret stays valid for").select_option("72")
    page.get_by_role("button", name="Rotate secret").click()
    second = page.get_by_label("New webhook secret").input_value()
    assert second.startswith("whsec_") and second != first
    expect(page.get_by_role("status")).to_contain_text("The previous secret stays valid until")
    expect(page.locator("#previous-secret")).to_contain_text("Previous secret valid until")
    until = page.locator("#previous-secret time").get_attribute("datetime")
    left = datetime.fromisoformat(until) - datetime.now(UTC)
    assert timedelta(hours=71, minutes=58) < left <= timedelta(hours=72)  # the choice made
    tab.check_accessible_forms()
    tab.screenshot("webhook-rotated")
    rotated = secret_events(tab)
    assert rotated["WebhookSecretRotated"] >= 1
    reload_and_back(tab, second)
    assert secret_events(tab)["WebhookSecretRotated"] == rotated["WebhookSecretRotated"]

    # During the overlap a test event verifies with either secret.
    tab.open_tab("Webhooks")
    expect(page.locator("#previous-secret")).to_be_visible()
    received_before = len(receiver.requests)
    page.get_by_role("button", name="Send test event").click()
    expect(page.locator("#delivery-status")).to_have_text("Succeeded", timeout=30_000)
    [request] = [
        r
        for r in receiver.requests[received_before:]
        if r.headers.get("x-webhook-event") == "webhook.test"
    ]
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (first, second):
        Webhook(secret).verify(request.body, request.headers)  # raises if not

    # Removing the secret asks first; reloading the question removes nothing.
    tab.open_tab("Webhooks")
    page.get_by_role("link", name="Remove secret…").click()
    expect(page.get_by_role("heading", name="Remove the signing secret?")).to_be_visible()
    before_removal = secret_events(tab)
    page.reload()
    page.wait_for_load_state("load")
    assert secret_events(tab) == before_removal
    page.get_by_role("button", name="Remove secret").click()
    expect(page.locator("#secret-status")).to_have_text("not set")
    expect(page.locator("#previous-secret")).to_have_count(0)
    removed = secret_events(tab)
    assert removed["WebhookSecretChanged"] == before_removal["WebhookSecretChanged"] + 1
    reload_and_back(tab, second)
    assert secret_events(tab) == removed
