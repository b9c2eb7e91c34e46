# ruff: noqa: F811 - the fixtures imported from test_dashboard are these tests' arguments
"""SPEC 9 in a real headless Chromium against `tenzo serve` (the server, browser and tab
of tests/e2e/test_dashboard.py): the API Keys page leads with its list, rolling a key
with an overlap, renaming in place, hiding revoked keys, and the Admin tokens tab.

Shown once means once: after creating, rolling, renaming and revoking a key, and issuing
and revoking an admin token, each test reloads the page and goes Back, then counts what
exists through the admin API — exactly what the one form made, and no secret on screen.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
from playwright.sync_api import expect

from tests.e2e.test_dashboard import (  # noqa: F401 (the module's fixtures, reused)
    DESKTOP,
    Server,
    Tab,
    browser,
    receiver,
    server,
    tab,
)

pytestmark = pytest.mark.browser


def admin_api(server: Server, method: str, path: str, **kwargs: Any) -> Any:
    answer = requests.request(
        method,
        server.url("/admin/v1" + path),
        headers={"Authorization": f"Bearer {server.admin_token}"},
        timeout=10,
        **kwargs,
    )
    assert answer.status_code < 300, answer.text
    return answer.json()


def keys_named(server: Server, name: str) -> list[dict[str, Any]]:
    return [key for key in admin_api(server, "GET", "/api-keys")["items"] if key["name"] == name]


def events_of_type(server: Server, event_type: str) -> list[dict[str, Any]]:
    return admin_api(server, "GET", f"/events?type={event_type}&limit=1000")["items"]


def public_api(server: Server, key: str) -> int:
    answer = requests.get(
        server.url("/v1/jobs"), headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    return answer.status_code


def reload_and_back(tab: Tab, secret: str | None = None) -> None:
    """Reload the page the form led to, go Back, and reload again: no secret shown again."""
    page = tab.page
    for step in (page.reload, page.go_back, page.reload):
        step()
        page.wait_for_load_state("load")
        if secret:
            assert secret not in page.content(), f"the secret is shown again after {step}"


def key_row(tab: Tab, name: str) -> Any:
    page = tab.page
    return page.locator("tr", has=page.get_by_role("rowheader", name=name, exact=False)).first


def test_the_key_list_is_above_the_fold_and_revoked_keys_can_be_hidden(tab: Tab) -> None:
    page, server = tab.page, tab.server
    for name in ("Fold one", "Fold two"):
        admin_api(server, "POST", "/api-keys", json={"name": name})
    revoked = admin_api(server, "POST", "/api-keys", json={"name": "Fold revoked"})
    admin_api(server, "POST", f"/api-keys/{revoked['id']}/revoke")
    tab.sign_in()
    table = page.locator("table").first
    box = table.bounding_box()
    assert box is not None and box["y"] < DESKTOP["height"], "the key list is below the fold"
    expect(key_row(tab, "Fold revoked")).to_be_visible()
    tab.screenshot("api-keys-list-first")

    page.get_by_role("navigation", name="Which keys").get_by_role(
        "link", name="Hide revoked"
    ).click()
    page.wait_for_url("**/api-keys?hide=revoked")
    expect(page.get_by_role("rowheader", name="Fold revoked")).to_have_count(0)
    expect(key_row(tab, "Fold one")).to_be_visible()
    expect(page.get_by_text("revoked key", exact=False).first).to_be_visible()
    tab.check_accessible_forms()


def test_create_a_key_reload_and_go_back(tab: Tab) -> None:
    page, server = tab.page, tab.server
    tab.sign_in()
    page.get_by_label("Name", exact=True).fill("Once only")
    page.get_by_role("button", name="Generate New Key").click()
    key = page.get_by_label("New API key").input_value()
    reload_and_back(tab, key)
    assert len(keys_named(server, "Once only")) == 1


def test_roll_a_key_use_both_until_the_old_ones_end(tab: Tab) -> None:
    page, server = tab.page, tab.server
    old = admin_api(server, "POST", "/api-keys", json={"name": "Rolling sync"})
    tab.sign_in()
    key_row(tab, "Rolling sync").get_by_role("link", name="Roll Rolling sync").click()
    expect(page.get_by_role("heading", name="Roll the key “Rolling sync”?")).to_be_visible()
    overlap = page.get_by_label("Old key keeps working for (hours)")
    assert overlap.input_value() == "24"
    tab.check_accessible_forms()
    tab.screenshot("api-keys-roll")

    overlap.fill("169")  # past the field's max, as a script could send it
    overlap.evaluate("field => field.form.noValidate = true")
    page.get_by_role("button", name="Roll key").click()
    expect(page.locator("#expires_in_hours-error")).to_contain_text("less than or equal to 168")
    assert len(keys_named(server, "Rolling sync")) == 1

    page.get_by_label("Old key keeps working for (hours)").fill("24")
    page.get_by_role("button", name="Roll key").click()
    page.wait_for_url("**/api-keys")
    expect(page.get_by_role("alert")).to_contain_text("(rolled)")
    new_key = page.get_by_label("New API key").input_value()
    tab.screenshot("api-keys-rolled")
    reload_and_back(tab, new_key)

    keys = keys_named(server, "Rolling sync")
    assert len(keys) == 2, "a reload or Back rolled the key again"
    tab.open_tab("API Keys")  # Back led to the roll form: it shows, and does nothing
    assert (
        len([e for e in events_of_type(server, "ApiKeyRolled") if e["aggregate_id"] == old["id"]])
        == 1
    )
    old_row = page.locator(f'tr[data-key-id="{old["id"]}"]')
    expect(old_row.locator('[data-label="Expires"]')).to_contain_text("expires in 23 h (rolled)")
    expect(old_row).to_have_class("status-active expires-soon")
    expect(old_row.locator(".badge-soon")).to_have_text("Expires soon")
    assert public_api(server, old["key"]) == 200  # during the overlap, both work
    assert public_api(server, new_key) == 200

    # Rolling the new key at once (0 h): the key it replaces is refused from the next request.
    key_row(tab, "Rolling sync").get_by_role("link", name="Roll Rolling sync").first.click()
    page.get_by_label("Old key keeps working for (hours)").fill("0")
    page.get_by_role("button", name="Roll key").click()
    page.wait_for_url("**/api-keys")
    newest = page.get_by_label("New API key").input_value()
    reload_and_back(tab, newest)
    tab.open_tab("API Keys")
    assert public_api(server, new_key) == 401
    assert public_api(server, newest) == 200
    assert len(keys_named(server, "Rolling sync")) == 3


def test_rename_a_key_in_place_reload_and_go_back(tab: Tab) -> None:
    page, server = tab.page, tab.server
    created = admin_api(server, "POST", "/api-keys", json={"name": "Misnamed"})
    tab.sign_in()
    page.get_by_role("link", name="Rename Misnamed").click()
    field = page.get_by_label("New name for Misnamed")
    tab.check_accessible_forms()
    field.fill("Well named")
    page.get_by_role("button", name="Save name").click()
    page.wait_for_url("**/api-keys")
    expect(page.get_by_role("status")).to_contain_text("is now named “Well named”")
    reload_and_back(tab)
    renamed = [
        e for e in events_of_type(server, "ApiKeyRenamed") if e["aggregate_id"] == created["id"]
    ]
    assert len(renamed) == 1
    assert keys_named(server, "Well named")[0]["id"] == created["id"]


def test_revoke_a_key_reload_and_go_back(tab: Tab) -> None:
    page, server = tab.page, tab.server
    created = admin_api(server, "POST", "/api-keys", json={"name": "Retire me"})
    tab.sign_in()
    key_row(tab, "Retire me").get_by_role("link", name="Revoke Retire me").click()
    page.get_by_role("button", name="Revoke key").click()
    page.wait_for_url("**/api-keys")
    reload_and_back(tab)
    revoked = [
        e for e in events_of_type(server, "ApiKeyRevoked") if e["aggregate_id"] == created["id"]
    ]
    assert len(revoked) == 1


def test_issue_and_revoke_an_admin_token_reload_and_go_back(tab: Tab) -> None:
    page, server = tab.page, tab.server
    tab.sign_in()
    tab.open_tab("Admin tokens")
    expect(page.get_by_role("rowheader", name="First admin token")).to_be_visible()
    page.get_by_label("Token name").fill("Deploy pipeline")
    page.get_by_role("button", name="Issue New Token").click()
    page.wait_for_url("**/admin-tokens")
    token = page.get_by_role("textbox", name="New admin token").input_value()
    assert token.startswith("tenzo_admin_")
    tab.check_accessible_forms()
    tab.screenshot("admin-tokens-new")
    reload_and_back(tab, token)
    tokens = admin_api(server, "GET", "/admin-tokens")["items"]
    assert [t["name"] for t in tokens].count("Deploy pipeline") == 1
    issued = next(t for t in tokens if t["name"] == "Deploy pipeline")

    # The new token works, and its use shows as last used.
    used = requests.get(
        server.url("/admin/v1/api-keys"), headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert used.status_code == 200

    row = page.locator(f'tr[data-token-id="{issued["id"]}"]')
    row.get_by_role("link", name="Revoke Deploy pipeline").click()
    expect(
        page.get_by_role("heading", name="Revoke the admin token “Deploy pipeline”?")
    ).to_be_visible()
    page.get_by_role("button", name="Revoke token").click()
    page.wait_for_url("**/admin-tokens")
    expect(page.get_by_role("status")).to_contain_text("is revoked")
    reload_and_back(tab)
    revocations = [
        e for e in events_of_type(server, "AdminTokenRevoked") if e["aggregate_id"] == issued["id"]
    ]
    assert len(revocations) == 1
    refused = requests.get(
        server.url("/admin/v1/api-keys"), headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert refused.status_code == 401
    tab.screenshot("admin-tokens")
