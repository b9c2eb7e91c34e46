"""The Developer Tools web page in a real headless Chromium, against the real server.

`tenzo serve` runs as a subprocess on a free port in a temporary directory, with a local
HTTPS receiver as the webhook endpoint; each test walks one flow as a person would, with
the admin token the server printed. Every test fails on a browser console error, and
saves screenshots to test-artifacts/ (look at them).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from contracts.signing import verify
from tests.conftest import IN_CI
from tests.support.https_receiver import HttpsReceiver, ScriptedResponse

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
if not Path(CHROMIUM).exists():  # one line for the whole module, not one per test
    MISSING = (
        f"no {CHROMIUM}: to run the browser tests, install Debian's chromium"
        " (as root: apt-get install chromium)"
    )
    if IN_CI:
        pytest.fail(MISSING + "; CI=true requires them", pytrace=False)
    pytest.skip(MISSING, allow_module_level=True)
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
EXACT_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")
AXE = Axe()
expect.set_options(timeout=15_000)  # the machine is shared: be patient, never flaky


# -- the server, the receiver, the browser ------------------------------------------------


class Server:
    def __init__(self, process: subprocess.Popen[str], base_url: str, admin_token: str):
        self.process = process
        self.base_url = base_url
        self.admin_token = admin_token

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tenzo() -> str:
    beside = Path(sys.executable).with_name("tenzo")
    found = str(beside) if beside.exists() else shutil.which("tenzo")
    assert found, "the tenzo command is not installed (pip install -e .)"
    return found


@pytest.fixture(scope="module")
def receiver() -> Iterator[HttpsReceiver]:
    with HttpsReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def server(receiver: HttpsReceiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`tenzo serve` on the embedded defaults in a fresh directory, as `make run` starts it."""
    workdir = tmp_path_factory.mktemp("tenzo-serve")
    env = {name: value for name, value in os.environ.items() if not name.startswith("TENZO_")}
    env |= {
        "TENZO_HTTP_PORT": str(_free_port()),
        "TENZO_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
        "TENZO_WEBHOOK_CA_BUNDLE": receiver.ca_pem_path,
        "TENZO_WEBHOOK_RETRY_DELAYS": "0,0.5,1",
        "TENZO_WEBHOOK_TIMEOUT": "5",
        # Small, so that a test can see the auto-disable (SPEC 10).
        "TENZO_WEBHOOK_DISABLE_AFTER_FAILURES": "2",
        "TENZO_WEBHOOK_DISABLE_AFTER_HOURS": "0",
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        [_tenzo(), "serve"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    output: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    token = base_url = None
    deadline = time.monotonic() + 60
    try:
        while base_url is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or process.poll() is not None:
                pytest.fail("tenzo serve did not start:\n" + "".join(output))
            with contextlib.suppress(queue.Empty):
                line = lines.get(timeout=min(remaining, 1))
                if found := re.search(r"(tenzo_admin_\w+)", line):
                    token = found.group(1)
                if found := re.search(r"Dashboard: (http://\S+)", line):
                    base_url = found.group(1)
        assert token, "tenzo serve printed no admin token:\n" + "".join(output)
        yield Server(process, base_url, token)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


class Tab:
    """A browser tab that records console errors and uncaught exceptions."""

    def __init__(self, browser: Any, server: Server, viewport: dict[str, int]):
        self.server = server
        self.viewport = viewport
        self.context = browser.new_context(viewport=viewport, accept_downloads=True)
        self.context.grant_permissions(
            ["clipboard-read", "clipboard-write"], origin=server.base_url.rstrip("/")
        )
        self.page = self.context.new_page()
        self.page.set_default_timeout(10_000)
        self.errors: list[str] = []
        self.page.on(
            "console", lambda message: message.type == "error" and self.errors.append(message.text)
        )
        self.page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def goto(self, path: str) -> None:
        self.page.goto(self.server.url(path))

    def sign_in(self) -> None:
        self.goto("/")
        self.page.get_by_label("Admin token").fill(self.server.admin_token)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url("**/api-keys")

    def open_tab(self, name: str) -> None:
        nav = self.page.get_by_role("navigation", name="Developer Tools sections")
        with self.page.expect_navigation():
            nav.get_by_role("link", name=name).click()

    def screenshot(self, name: str) -> None:
        self.page.wait_for_load_state("load")
        ARTIFACTS.mkdir(exist_ok=True)
        suffix = "phone" if self.viewport == PHONE else "desktop"
        self.page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}-{suffix}.png"), full_page=True)

    def take_expected_error(self, fragment: str) -> None:
        """Remove one console error the test caused on purpose (e.g. a refused form)."""
        matching = [error for error in self.errors if fragment in error]
        assert matching, f"expected a console error with {fragment!r}, got {self.errors}"
        self.errors.remove(matching[0])

    def check_accessible_forms(self) -> None:
        """Every visible control has a label, every button a name; no sideways scrolling."""
        self.page.wait_for_load_state("load")  # with its stylesheet, after a navigation
        unlabelled = self.page.evaluate(
            """() => [...document.querySelectorAll('input, select, textarea, button')]
                .filter(el => el.type !== 'hidden' && el.offsetParent !== null)
                .filter(el => el.tagName === 'BUTTON'
                    ? !(el.textContent.trim() || el.getAttribute('aria-label'))
                    : !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
                .map(el => el.outerHTML)"""
        )
        assert unlabelled == []
        overflow = self.page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        if overflow > 0:  # name the elements that stick out, innermost first
            wide = self.page.evaluate(
                """() => [...document.querySelectorAll('body *')]
                    .filter(el => el.getBoundingClientRect().right
                        > document.documentElement.clientWidth + 0.5)
                    .reverse().slice(0, 5)
                    .map(el => el.outerHTML.slice(0, 160))"""
            )
            pytest.fail(f"the page scrolls sideways by {overflow}px: {wide}")

    def check_axe(self, name: str) -> None:
        """axe-core (the copy axe-playwright-python bundles) finds no violation on the page
        as it stands: every rule of its default set (WCAG 2 A/AA and best practices), none
        switched off. The report names the rule, the element and what to fix."""
        self.page.wait_for_load_state("load")
        results = AXE.run(self.page)
        assert results.violations_count == 0, f"axe on {name}:\n" + results.generate_report()


@pytest.fixture
def tab(browser: Any, server: Server) -> Iterator[Tab]:
    opened = Tab(browser, server, DESKTOP)
    try:
        yield opened
        assert opened.errors == [], f"console errors: {opened.errors}"
    finally:
        opened.context.close()


@pytest.fixture
def phone(browser: Any, server: Server) -> Iterator[Tab]:
    opened = Tab(browser, server, PHONE)
    try:
        yield opened
        assert opened.errors == [], f"console errors: {opened.errors}"
    finally:
        opened.context.close()


def eventually(check: Callable[[], bool], timeout: float = 15, every: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail("the page did not show it in time")
        time.sleep(every)


# -- flows --------------------------------------------------------------------------------


def test_sign_in_with_a_wrong_token_then_the_printed_one_by_keyboard(tab: Tab) -> None:
    page = tab.page
    tab.goto("/")
    expect(page.get_by_role("heading", name="Sign in to Developer Tools")).to_be_visible()
    tab.screenshot("sign-in")

    page.get_by_label("Admin token").fill("tenzo_admin_thisIsNotAToken")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("is truncated")  # which mistake
    tab.screenshot("sign-in-wrong-token")

    # Keyboard only: the token field has focus; Enter submits.
    focused = page.evaluate("document.activeElement.id")
    assert focused == "token"
    page.keyboard.type(tab.server.admin_token)
    page.keyboard.press("Enter")
    page.wait_for_url("**/api-keys")
    expect(page.get_by_role("heading", name="Settings → Developer Tools")).to_be_visible()
    tab.check_accessible_forms()

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/sign-in")
    expect(page.get_by_role("status")).to_have_text("You have signed out.")
    tab.goto("/api-keys")
    assert page.url.endswith("/sign-in")


def test_generate_a_key_read_it_once_use_it_see_the_usage_then_revoke_it(tab: Tab) -> None:
    page, server = tab.page, tab.server
    tab.sign_in()
    expiry = (datetime.now(UTC) + timedelta(days=30)).date()

    # Keyboard: tab to the name field, type, Enter.
    for _ in range(120):  # past the list, which comes first
        if page.evaluate("document.activeElement.id") == "name":
            break
        page.keyboard.press("Tab")
    else:
        pytest.fail("the key name field cannot be reached with Tab")
    page.keyboard.type("E2E sync")
    page.get_by_label("Expiration date (optional)").fill(expiry.isoformat())
    page.get_by_label("Name").press("Enter")

    once = page.get_by_role("alert")
    expect(once).to_contain_text("It will not be shown again.")
    key = page.get_by_label("New API key").input_value()
    assert key.startswith("tenzo_pk_")
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_text("Copied to the clipboard.")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == key
    tab.check_accessible_forms()
    tab.check_axe("the API keys page with a new key")
    tab.screenshot("api-keys-new-key")

    tab.open_tab("API Keys")
    assert key not in page.content()  # shown once, never again
    row = page.locator("tr", has=page.get_by_role("rowheader", name="E2E sync"))
    expect(row.locator('[data-label="Usage"]')).to_have_text("0")
    expect(row.locator('[data-label="Last used"]')).to_have_text("never")
    # Works through the chosen day (UTC), and the page says so with that day.
    expires = row.locator('[data-label="Expires"]').inner_text()
    assert expires.startswith(f"{expiry:%b} {expiry.day}, {expiry.year}, end of day UTC (in ")

    created = requests.post(
        server.url("/v1/jobs"),
        json={"title": "Staff Engineer"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert created.status_code == 201, created.text

    def usage_shown() -> bool:
        page.reload()
        return row.locator('[data-label="Usage"]').inner_text() == "1"

    eventually(usage_shown)
    last_used = row.locator('[data-label="Last used"] time')
    expect(last_used).to_have_text("just now")
    assert EXACT_TIME.match(last_used.get_attribute("title") or "")
    tab.check_axe("the API keys page")
    tab.screenshot("api-keys")

    row.get_by_role("link", name="Revoke E2E sync").click()
    expect(page.get_by_role("heading", name="Revoke the key “E2E sync”?")).to_be_visible()
    tab.check_axe("the revoke confirmation")
    tab.screenshot("api-keys-revoke-confirm")
    page.get_by_role("button", name="Revoke key").click()
    page.wait_for_url("**/api-keys")
    expect(page.get_by_role("status")).to_contain_text("is revoked")
    expect(row.locator(".badge")).to_have_text("Revoked")
    assert "status-revoked" in (row.get_attribute("class") or "")

    refused = requests.post(
        server.url("/v1/jobs"),
        json={"title": "Too late"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert refused.status_code == 401


def test_configure_the_webhook_switch_it_on_and_manage_its_secret(tab: Tab, receiver) -> None:
    page = tab.page
    tab.sign_in()
    tab.open_tab("Webhooks")
    if page.get_by_role("link", name="Delete webhook…").count():
        page.get_by_role("link", name="Delete webhook…").click()
        page.get_by_role("button", name="Delete webhook").click()

    url_field = page.get_by_label("Endpoint URL")
    url_field.fill("http://example.com/hook")
    page.get_by_role("button", name="Save webhook").click()
    expect(page.locator("#url-error")).to_have_text("Webhook URL must use https://.")
    assert page.get_by_label("Endpoint URL").get_attribute("aria-invalid") == "true"
    tab.screenshot("webhook-invalid-url")

    page.get_by_label("Endpoint URL").fill(receiver.url)
    page.get_by_role("button", name="Save webhook").click()
    expect(page.get_by_role("status")).to_have_text("Webhook saved.")
    switch = page.get_by_role("switch", name="Enable webhook delivery")
    assert switch.get_attribute("aria-checked") == "false"
    switch.click()
    expect(page.get_by_role("switch", name="Enable webhook delivery")).to_have_attribute(
        "aria-checked", "true"
    )
    expect(page.locator("#secret-status")).to_have_text("not set")

    page.get_by_role("button", name="Generate").click()
    secret = page.get_by_label("New webhook secret").input_value()
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=", secret)  # Standard Webhooks form
    expect(page.get_by_role("alert")).to_contain_text("It will not be shown again.")
    tab.check_accessible_forms()
    tab.screenshot("webhook")

    tab.open_tab("Webhooks")
    expect(page.locator("#secret-status")).to_have_text("set")
    assert secret not in page.content()

    # Past the field's maxlength (as a script or an old browser could send it): the
    # server's answer is shown by the field.
    page.get_by_label("New secret").evaluate("field => { field.value = 'x'.repeat(257) }")
    page.get_by_role("button", name="Change secret").click()
    expect(page.locator("#secret-error")).to_have_text("Length must be between 1 and 256.")
    page.get_by_role("link", name="Remove secret…").click()  # asks first
    expect(page.get_by_role("heading", name="Remove the signing secret?")).to_be_visible()
    page.get_by_role("button", name="Remove secret").click()
    expect(page.locator("#secret-status")).to_have_text("not set")


def fresh_enabled_webhook(tab: Tab, url: str) -> str:
    """Configure the webhook in the page (deleting any earlier one), switched on, with a
    generated secret; return the secret."""
    page = tab.page
    tab.open_tab("Webhooks")
    if page.get_by_role("link", name="Delete webhook…").count():
        page.get_by_role("link", name="Delete webhook…").click()
        page.get_by_role("button", name="Delete webhook").click()
    page.get_by_label("Endpoint URL").fill(url)
    page.get_by_role("switch", name="Enable webhook delivery").check()
    page.get_by_role("button", name="Save webhook").click()
    expect(page.get_by_role("switch", name="Enable webhook delivery")).to_have_attribute(
        "aria-checked", "true"
    )
    page.get_by_role("button", name="Generate").click()
    return page.get_by_label("New webhook secret").input_value()


def test_send_a_test_event_see_it_arrive_and_follow_it_in_deliveries(
    tab: Tab, receiver: HttpsReceiver
) -> None:
    page = tab.page
    tab.sign_in()
    secret = fresh_enabled_webhook(tab, receiver.url)
    received_before = len(receiver.requests)

    page.get_by_role("button", name="Send test event").click()
    page.wait_for_url("**/deliveries/*?sent=test")
    # The page follows the delivery until it ends, without a reload, and then says how
    # it ended, with the focus on that message.
    expect(page.locator("#delivery-status")).to_have_text("Succeeded", timeout=30_000)
    outcome = page.get_by_role("status")
    expect(outcome).to_have_text("The test event was delivered: your endpoint answered 200.")
    expect(outcome).to_be_focused()
    attempt = page.locator("table.attempts tbody tr")
    expect(attempt).to_have_count(1)
    expect(attempt.locator('[data-label="Result"]')).to_have_text("200")
    assert re.fullmatch(r"[\d,]+ ms", attempt.locator('[data-label="Duration"]').inner_text())
    expect(attempt.locator('[data-label="Response"]')).to_have_text("ok")
    event_id = page.locator("dd code").first.inner_text()
    tab.screenshot("delivery")

    arrived = [
        r for r in receiver.requests[received_before:] if r.headers.get("x-webhook-id") == event_id
    ]
    assert len(arrived) == 1
    request = arrived[0]
    assert request.headers["x-webhook-event"] == "webhook.test"
    assert verify(secret, request.body, request.headers["x-webhook-signature"])

    tab.open_tab("Deliveries")
    row = page.locator("tbody tr").first
    expect(row.locator('[data-label="Event"]')).to_have_text("webhook.test")
    expect(row.locator('[data-label="Status"]')).to_have_text("Succeeded")
    expect(row.locator('[data-label="Attempts"]')).to_have_text("1")
    expect(row.locator('[data-label="Last response"]')).to_have_text("200")
    tab.check_accessible_forms()
    tab.screenshot("deliveries")

    # A failing endpoint: every attempt answers 500, then Redeliver succeeds.
    receiver.script(
        *[
            ScriptedResponse(
                status=500, body=b"down for maintenance", headers={"Set-Cookie": "sid=s3cr3t"}
            )
        ]
        * 3
    )
    tab.open_tab("Webhooks")
    page.get_by_role("button", name="Send test event").click()
    expect(page.locator("#delivery-status")).to_have_text("Failed", timeout=30_000)
    # Never a success message over a failure: an alert that says why, focused.
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("The test event failed.")
    expect(alert).to_contain_text("Your server answered 500 Internal Server Error.")
    expect(alert).to_be_focused()
    expect(page.locator(".outcome-succeeded")).to_have_count(0)
    expect(page.locator("table.attempts tbody tr")).to_have_count(3)
    expect(page.locator("table.attempts pre.excerpt").first).to_have_text("down for maintenance")
    expect(page.locator("#next-attempt")).to_have_text("no more attempts: redeliver to try again")
    # What was sent and what came back, in panes that open and copy.
    page.get_by_text("Request body", exact=False).first.click()
    body = page.get_by_role("textbox", name="Request body").input_value()
    assert json.loads(body)["event"] == "webhook.test"
    page.get_by_role("button", name="Copy request body").click()
    expect(page.locator('[data-copy-status="request-body"]')).to_have_text(
        "Copied to the clipboard."
    )
    last = page.locator("#attempt-3")
    expect(last).to_have_attribute("open", "")
    request_headers = last.get_by_role("textbox", name="Request headers of attempt 3").input_value()
    assert "X-Webhook-Signature: sha256=" in request_headers
    assert "X-Webhook-Attempt: 3" in request_headers
    response_headers = last.get_by_role(
        "textbox", name="Response headers of attempt 3"
    ).input_value()
    assert "Set-Cookie: [masked]" in response_headers and "s3cr3t" not in response_headers
    # Every relative time has its exact UTC time beside it, not only on hover.
    started = page.locator('table.attempts [data-label="Started"]').first
    assert re.search(r"\(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)", started.inner_text())
    tab.check_accessible_forms()
    # Every pane open: what was sent and what came back, for each attempt.
    page.locator("details").evaluate_all("panes => panes.forEach(pane => { pane.open = true })")
    tab.check_axe("a failed delivery with its panes open")
    tab.screenshot("delivery-failed")
    page.get_by_role("button", name="Redeliver").click()
    page.wait_for_url("**/deliveries/*?sent=redelivery")
    expect(page.locator("#delivery-status")).to_have_text("Succeeded", timeout=30_000)
    expect(page.get_by_role("status")).to_contain_text("The redelivery was delivered")
    tab.check_axe("a redelivered delivery with its outcome")
    numbers = page.locator('table.attempts [data-label="#"]').all_inner_texts()
    assert numbers == ["1", "2", "3", "4"]
    runs = page.locator('table.attempts [data-label="Run"]').all_inner_texts()
    assert runs == ["1", "1", "1", "2"]

    tab.open_tab("Deliveries")
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_text("No deliveries with status failed")).to_be_visible()

    # Switched off, the page says so instead of offering the button.
    tab.open_tab("Webhooks")
    page.get_by_role("switch", name="Enable webhook delivery").click()
    expect(page.get_by_text("Switch delivery on to send a test event.")).to_be_visible()
    expect(page.get_by_role("button", name="Send test event")).to_have_count(0)


def test_no_form_repeats_its_action_on_reload_or_back(tab: Tab, receiver: HttpsReceiver) -> None:
    """After every form, reloading the page and going Back record nothing more and show
    no key or secret again (Post/Redirect/Get)."""
    page, server = tab.page, tab.server

    def history() -> list[str]:
        answer = requests.get(
            server.url("/admin/v1/events?limit=500"),
            headers={"Authorization": f"Bearer {server.admin_token}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        items = answer.json()["items"]  # what people did, not the dispatcher's attempts
        return [item["type"] for item in items if item["actor"]["type"] != "dispatcher"]

    def reload_and_back(revealed: str | None = None) -> None:
        recorded = history()
        page.reload()
        page.wait_for_load_state("load")
        if revealed:
            assert revealed not in page.content()
        page.go_back()
        page.wait_for_load_state("load")
        if revealed:
            assert revealed not in page.content()
        page.reload()
        page.wait_for_load_state("load")
        assert history() == recorded, "a reload or Back repeated a form's action"

    tab.sign_in()
    page.get_by_label("Name").fill("Reload me")
    page.get_by_role("button", name="Generate New Key").click()
    key = page.get_by_label("New API key").input_value()
    reload_and_back(revealed=key)

    secret = fresh_enabled_webhook(tab, receiver.url)
    reload_and_back(revealed=secret)
    tab.open_tab("Webhooks")

    page.get_by_role("switch", name="Enable webhook delivery").click()
    expect(page.get_by_role("switch", name="Enable webhook delivery")).to_have_attribute(
        "aria-checked", "false"
    )
    reload_and_back()

    page.get_by_role("switch", name="Enable webhook delivery").click()
    expect(page.get_by_role("switch", name="Enable webhook delivery")).to_have_attribute(
        "aria-checked", "true"
    )

    def deliveries() -> int:
        answer = requests.get(
            server.url("/admin/v1/deliveries?limit=100"),
            headers={"Authorization": f"Bearer {server.admin_token}"},
            timeout=10,
        )
        return len(answer.json()["items"])

    before = deliveries()
    page.get_by_role("button", name="Send test event").click()
    page.wait_for_url("**/deliveries/*?sent=test")
    delivery_page = page.url
    expect(page.locator("#delivery-status")).not_to_have_text("Pending", timeout=30_000)
    reload_and_back()
    assert deliveries() == before + 1, "a reload or Back sent another test event"
    page.goto(delivery_page)
    attempts = len(page.locator("table.attempts tbody tr").all())
    page.get_by_role("button", name="Redeliver").click()
    page.wait_for_url("**/deliveries/*?sent=redelivery")
    expect(page.locator("table.attempts tbody tr")).to_have_count(attempts + 1, timeout=30_000)
    expect(page.locator("#delivery-status")).not_to_have_text("Pending", timeout=30_000)
    reload_and_back()
    expect(page.locator("table.attempts tbody tr")).to_have_count(attempts + 1)
    assert deliveries() == before + 1

    tab.open_tab("API Keys")
    row = page.locator("tr", has=page.get_by_role("rowheader", name="Reload me"))
    row.get_by_role("link", name="Revoke Reload me").click()
    page.get_by_role("button", name="Revoke key").click()
    page.wait_for_url("**/api-keys")
    reload_and_back()


def test_a_failing_endpoint_is_switched_off_with_a_banner_then_recovered(
    tab: Tab, receiver: HttpsReceiver
) -> None:
    page = tab.page
    tab.sign_in()
    fresh_enabled_webhook(tab, receiver.url)
    receiver.script(*[ScriptedResponse(status=503, body=b"overloaded")] * 6)
    for _ in range(2):
        tab.open_tab("Webhooks")
        page.get_by_role("button", name="Send test event").click()
        expect(page.locator("#delivery-status")).to_have_text("Failed", timeout=30_000)

    # The system switches delivery off (the catalog indexes the failures moments later).
    tab.open_tab("Webhooks")
    for _ in range(20):
        if page.locator("#auto-disabled").count():
            break
        time.sleep(0.5)
        page.reload()
    banner = page.get_by_role("alert").filter(has_text="switched off automatically")
    expect(banner).to_contain_text("the last 2 deliveries all failed")
    expect(page.locator("#health-streak")).to_have_text("2")
    expect(page.locator("#health-rate")).to_contain_text("%")
    expect(page.get_by_role("switch", name="Enable webhook delivery")).to_have_attribute(
        "aria-checked", "false"
    )
    tab.check_accessible_forms()
    tab.check_axe("the Webhooks page with the auto-disabled banner and the health")
    tab.screenshot("webhook-auto-disabled")
    banner.get_by_role("button", name="Enable delivery again").click()
    expect(page.locator("#auto-disabled")).to_have_count(0)
    expect(page.get_by_role("switch", name="Enable webhook delivery")).to_have_attribute(
        "aria-checked", "true"
    )
    expect(page.locator("#health-streak")).to_have_text("0")

    # Recover them: the confirmation says how many, and a reload sends nothing again.
    tab.open_tab("Deliveries")
    page.get_by_label("Failed deliveries created in the last").select_option("1")
    page.get_by_role("button", name="Recover…").click()
    heading = page.get_by_role("heading", name=re.compile(r"Redeliver \d+ failed deliveries\?"))
    expect(heading).to_be_visible()
    count = int(re.search(r"\d+", heading.inner_text()).group())  # type: ignore[union-attr]
    assert count >= 2
    tab.check_axe("the recover confirmation")
    tab.screenshot("recover-confirm")
    received = len(receiver.requests)
    page.get_by_role("button", name=f"Redeliver {count}").click()
    page.wait_for_url("**/deliveries")
    expect(page.get_by_role("status")).to_contain_text(
        f"{count} failed deliveries are being sent again"
    )
    tab.check_axe("the deliveries page after a recovery")
    wait_until = time.monotonic() + 30
    while len(receiver.requests) < received + count and time.monotonic() < wait_until:
        time.sleep(0.2)
    page.reload()
    time.sleep(1)
    assert len(receiver.requests) == received + count


def test_read_filter_and_export_the_audit_log(tab: Tab) -> None:
    page = tab.page
    tab.sign_in()
    page.get_by_label("Name").fill("Audited key")
    page.get_by_role("button", name="Generate New Key").click()
    plaintext = page.get_by_label("New API key").input_value()

    tab.open_tab("Audit log")
    # Newest first, in words: the key just made is on top, by its name.
    first = page.locator("tbody tr").first
    expect(first.locator(".event-title")).to_have_text("API key “Audited key” created")
    expect(first.locator('[data-label="Actor"]')).to_have_text(re.compile(r"^admin token …\w{4}$"))
    tab.check_accessible_forms()
    tab.check_axe("the audit log, newest first")
    tab.screenshot("audit-log")
    page.get_by_label("Order").select_option("oldest")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/audit-log?*order=oldest*")
    expect(page.locator("tbody tr").first.locator("code.event-type")).to_have_text(
        "OrganizationCreated"
    )

    page.get_by_label("Show").select_option("configuration")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/audit-log?view=configuration*")
    titles = page.locator(".event-title").all_inner_texts()
    assert titles and not any(title.startswith("Delivery") for title in titles)
    page.locator("tbody details").first.evaluate("pane => { pane.open = true }")
    tab.check_axe("the audit log's configuration view")

    page.goto(tab.server.url("/audit-log"))
    page.get_by_label("Event type").select_option(label="API key created")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/audit-log?*type=ApiKeyCreated*")
    types = page.locator("code.event-type").all_inner_texts()
    assert types and set(types) == {"ApiKeyCreated"}
    last = page.locator("tbody tr").first
    expect(last.locator('[data-label="Actor"]')).to_contain_text("admin token")
    last.get_by_text("Show data").click()
    data = json.loads(last.locator("pre.json").inner_text())
    assert data["name"] == "Audited key"
    assert data["key_hash"] == "[redacted]"
    tab.check_axe("the audit log filtered by type")
    tab.screenshot("audit-log-filtered")

    with page.expect_download() as download:
        page.get_by_role("link", name="Export NDJSON").click()
    exported = Path(download.value.path()).read_text()
    items = [json.loads(line) for line in exported.splitlines()]
    assert items and {item["type"] for item in items} == {"ApiKeyCreated"}
    assert "Audited key" in exported and plaintext not in exported

    today = datetime.now(UTC).date()
    page.get_by_label("From (UTC)").fill((today - timedelta(days=3)).isoformat())
    page.get_by_label("To (UTC)").fill((today - timedelta(days=2)).isoformat())
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("No events match these filters")).to_be_visible()
    tab.check_axe("the audit log with no match")


def test_a_post_without_the_csrf_token_is_refused(tab: Tab) -> None:
    page, server = tab.page, tab.server
    tab.sign_in()
    page.get_by_label("Name").fill("Forged key")
    page.evaluate(
        "document.querySelectorAll('form input[name=csrf_token]').forEach(el => el.remove())"
    )
    page.get_by_role("button", name="Generate New Key").click()
    expect(page.get_by_role("heading", name="This form could not be accepted")).to_be_visible()
    tab.take_expected_error("400")

    # The same with the browser's own cookie from outside the page.
    cookies = {c["name"]: c["value"] for c in tab.context.cookies(server.base_url)}
    refused = requests.post(
        server.url("/api-keys"), data={"name": "Forged key"}, cookies=cookies, timeout=10
    )
    assert refused.status_code == 400
    tab.goto("/api-keys")
    assert page.get_by_role("rowheader", name="Forged key").count() == 0


def test_every_tab_reads_at_phone_width(phone: Tab) -> None:
    page = phone.page
    phone.goto("/")
    phone.check_accessible_forms()
    phone.screenshot("sign-in")
    phone.sign_in()
    page.get_by_label("Name").fill("Phone key")
    page.get_by_role("button", name="Generate New Key").click()
    expect(page.get_by_label("New API key")).to_be_visible()
    phone.check_accessible_forms()
    phone.screenshot("api-keys-new-key")
    for name, slug in [
        ("API Keys", "api-keys"),
        ("Webhooks", "webhook"),
        ("Deliveries", "deliveries"),
        ("Audit log", "audit-log"),
        ("Admin tokens", "admin-tokens"),
    ]:
        phone.open_tab(name)
        phone.check_accessible_forms()
        phone.check_axe(f"the {name} tab at phone width")
        phone.screenshot(slug)
    phone.open_tab("Deliveries")
    if page.get_by_role("link", name=re.compile("^Details of")).count():
        page.get_by_role("link", name=re.compile("^Details of")).first.click()
        page.wait_for_url("**/deliveries/*")
        phone.check_accessible_forms()
        phone.check_axe("a delivery at phone width")
        phone.screenshot("delivery")


def test_every_tab_passes_axe(tab: Tab) -> None:
    """Each tab as it first opens, the sign-in page and the admin tokens page included."""
    tab.goto("/")
    tab.check_axe("the sign-in page")
    tab.sign_in()
    for name in ("API Keys", "Webhooks", "Deliveries", "Audit log", "Admin tokens"):
        tab.open_tab(name)
        tab.check_axe(f"the {name} tab")
    page = tab.page
    page.get_by_label("Token name").fill("Axe check")
    page.get_by_role("button", name="Issue New Token").click()
    expect(page.get_by_role("textbox", name="New admin token")).to_be_visible()
    tab.check_axe("the admin tokens page with a new token")
    # The check can fail: a button without a name is a violation axe reports.
    page.evaluate("document.querySelector('main').append(document.createElement('button'))")
    planted = AXE.run(page).response["violations"]
    assert [violation["id"] for violation in planted] == ["button-name"]
    tab.screenshot("admin-tokens")
