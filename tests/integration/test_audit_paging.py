"""The audit log at 10,000+ events (SPEC 10), on SQLite and PostgreSQL: the dashboard's
audit log (newest first, oldest first, configuration changes only) and the admin API's
history page to the end and back with no event missing or repeated, and the webhook
URL change made amid the delivery noise is on the first screen of the configuration
view: who changed the webhook URL, and when."""

from __future__ import annotations

import html
import re
from typing import Any
from uuid import UUID

from domain.actors import DISPATCHER
from domain.application import DeveloperTools
from domain.deliveries import Delivery
from services.api.dashboard.audit import CONFIGURATION_TYPES
from tests.integration.test_dashboard import Page

FIRST_URL = "https://93.184.215.14/webhooks/first"
NEW_URL = "https://93.184.215.14/webhooks/moved"
DELIVERIES_EACH_SIDE = 1_700  # 3 events each: 10,200 events of noise around the change
SAVED_AT_ONCE = 250  # deliveries per save
POSITION = re.compile(r'data-label="#" class="num">(\d+)<')
NEXT_PAGE = re.compile(r'<a class="button" href="([^"]+)">Next page</a>')
ROW = re.compile(r"<tr>(.*?)</tr>", re.S)


def delivery_noise(application: DeveloperTools, org_id: UUID, first: int, count: int) -> int:
    """``count`` succeeded deliveries (scheduled, attempted, succeeded), saved through the
    application in batches; return how many events were recorded."""
    recorded = 0
    for start in range(first, first + count, SAVED_AT_ONCE):
        batch = []
        for number in range(start, min(start + SAVED_AT_ONCE, first + count)):
            delivery = Delivery(
                org_id=org_id,
                event_id=f"evt_noise_{number}",
                event_type="interview.completed",
                url=FIRST_URL,
                body='{"event":"interview.completed"}',
                actor=DISPATCHER,
            )
            delivery.record_attempt(
                started_at=application.clock(),
                status_code=204,
                duration_ms=12,
                error=None,
                response_excerpt="",
                actor=DISPATCHER,
            )
            delivery.succeed(actor=DISPATCHER)
            batch.append(delivery)
        recorded += len(application.save(*batch))
    return recorded


def api_walk(client: Any, org: Any, limit: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Every item of the admin API's history, page by page; and the pages' paths."""
    items: list[dict[str, Any]] = []
    paths: list[str] = []
    after: int | None = 0
    while after is not None:
        path = f"/admin/v1/events?limit={limit}&after={after}"
        answer = client.get(path, headers=org.headers)
        assert answer.status_code == 200, answer.json
        paths.append(path)
        items += answer.json["items"]
        after = answer.json["next_after"]
    return items, paths


def dashboard_walk(page: Page, path: str) -> tuple[list[int], list[str], dict[str, list[int]]]:
    """Follow "Next page" from ``path`` to the end: every position shown, the pages'
    paths, and each page's positions by path."""
    positions: list[int] = []
    paths: list[str] = []
    by_path: dict[str, list[int]] = {}
    next_path: str | None = path
    while next_path:
        text = page.get(next_path).get_data(as_text=True)
        shown = [int(p) for p in POSITION.findall(text)]
        assert shown, f"an empty page at {next_path}"
        paths.append(next_path)
        by_path[next_path] = shown
        positions += shown
        found = NEXT_PAGE.search(text)
        next_path = html.unescape(found.group(1)) if found else None
    return positions, paths, by_path


def test_10_000_events_page_to_the_end_and_back_with_none_missing_or_repeated(
    client, application, org
):
    before = client.get("/admin/v1/events?limit=1000", headers=org.headers).json["items"]
    configured = client.put(
        "/admin/v1/webhook", json={"url": FIRST_URL, "enabled": True}, headers=org.headers
    )
    assert configured.status_code in (200, 201), configured.json
    recorded = len(before) + 1
    recorded += delivery_noise(application, org.id, 0, DELIVERIES_EACH_SIDE)
    changed = client.patch("/admin/v1/webhook", json={"url": NEW_URL}, headers=org.headers)
    assert changed.status_code == 200, changed.json
    recorded += 1
    recorded += delivery_noise(application, org.id, DELIVERIES_EACH_SIDE, DELIVERIES_EACH_SIDE)
    assert recorded >= 10_000

    # The admin API, forward to the end: every event once, in order.
    items, paths = api_walk(client, org, limit=500)
    positions = [item["position"] for item in items]
    assert len(positions) == recorded
    assert positions == sorted(set(positions))
    assert len(paths) == recorded // 500 + 1
    # ...and back: each page again, from the last to the first, the same as before.
    pages = [positions[index * 500 : (index + 1) * 500] for index in range(len(paths))]
    for path, expected in reversed(list(zip(paths, pages, strict=True))):
        again = client.get(path, headers=org.headers).json["items"]
        assert [item["position"] for item in again] == expected
    # Another page size reads the same history.
    assert [item["position"] for item in api_walk(client, org, limit=1000)[0]] == positions
    [url_change] = [item for item in items if item["type"] == "WebhookUrlChanged"]
    assert url_change["data"]["url"] == NEW_URL
    assert url_change["actor"]["type"] == "admin_token"
    configuration = [item["position"] for item in items if item["type"] in CONFIGURATION_TYPES]
    # Amid the noise: thousands of events before it and after it.
    assert positions.index(url_change["position"]) > 5_000
    assert len(positions) - positions.index(url_change["position"]) > 5_000

    page = Page(client)
    assert page.sign_in(org.admin_token).status_code == 302

    # Newest first (the default), to the end, then back page by page.
    newest, newest_paths, newest_pages = dashboard_walk(page, "/audit-log")
    assert newest == positions[::-1]
    assert len(newest_paths) > 200
    for path in reversed(newest_paths):
        text = page.get(path).get_data(as_text=True)
        assert [int(p) for p in POSITION.findall(text)] == newest_pages[path]
    # "First page" on the last page leads back to the newest events.
    last = page.get(newest_paths[-1]).get_data(as_text=True)
    first_link = re.search(r'href="([^"]+)">First page</a>', last)
    assert first_link is not None
    first_text = page.get(html.unescape(first_link.group(1))).get_data(as_text=True)
    assert [int(p) for p in POSITION.findall(first_text)] == newest_pages["/audit-log"]
    assert f"Webhook URL changed to {NEW_URL}" not in first_text  # buried under deliveries

    # Oldest first: the same events, the other way round.
    oldest, _, _ = dashboard_walk(page, "/audit-log?order=oldest")
    assert oldest == positions

    # Configuration changes only: the URL change on the first screen, with who and when.
    config = page.get("/audit-log?view=configuration").get_data(as_text=True)
    rows = ROW.findall(config.split("<tbody>", 1)[1])
    [row] = [row for row in rows if f"Webhook URL changed to {NEW_URL}" in row]
    hint = org.admin_token[-4:]
    assert f'data-label="Actor">admin token …{hint}</td>' in row
    occurred = url_change["occurred_at"]  # e.g. 2026-12-06T02:40:00.123456Z
    exact = occurred[:10] + " " + occurred[11:19] + " UTC"
    assert f"({exact})" in row
    assert rows.index(row) == 0  # nothing newer is configuration
    config_positions, _, _ = dashboard_walk(page, "/audit-log?view=configuration")
    assert config_positions == configuration[::-1]
    config_oldest, _, _ = dashboard_walk(page, "/audit-log?view=configuration&order=oldest")
    assert config_oldest == configuration
