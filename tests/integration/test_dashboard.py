"""The Developer Tools web page through Flask's test client, on SQLite and PostgreSQL.

Sign-in, the session cookie, CSRF refusals and the forms' validation: the browser
walk-through is in tests/e2e/test_dashboard.py.
"""

from __future__ import annotations

import base64
import json
import re
import time
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest

from domain import credentials
from domain.actors import OPERATOR
from domain.organizations import AdminToken
from tests.conftest import history
from tests.support.dispatching import record_outcome
from tests.support.sql_statements import usage_statements

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
FIELD_ERROR = re.compile(r'<p class="error" id="([\w-]+)-error">([^<]*)</p>')


class Page:
    """A person's browser tab: follows the last page's CSRF token into the next form."""

    def __init__(self, client: Any):
        self.client = client
        self.csrf = ""

    def get(self, path: str, **kwargs: Any) -> Any:
        response = self.client.get(path, **kwargs)
        self._remember(response)
        return response

    def post(self, path: str, data: dict[str, str] | None = None, csrf: bool = True) -> Any:
        form = dict(data or {})
        if csrf:
            form["csrf_token"] = self.csrf
        response = self.client.post(path, data=form)
        self._remember(response)
        return response

    def sign_in(self, token: str) -> Any:
        self.get("/sign-in")
        return self.post("/sign-in", {"token": token})

    def _remember(self, response: Any) -> None:
        found = CSRF_FIELD.search(response.get_data(as_text=True))
        if found:
            self.csrf = found.group(1)


def field_errors(response: Any) -> dict[str, str]:
    return dict(FIELD_ERROR.findall(response.get_data(as_text=True)))


@pytest.fixture
def page(client: Any) -> Page:
    return Page(client)


@pytest.fixture
def signed_in(page: Page, org: Any) -> Page:
    response = page.sign_in(org.admin_token)
    assert response.status_code == 302
    page.get("/api-keys")
    return page


def cookie_payload(set_cookie: str) -> dict[str, Any]:
    """The (signed, not encrypted) JSON inside Flask's session cookie."""
    value = set_cookie.split(";", 1)[0].split("=", 1)[1]
    compressed = value.startswith(".")
    data = value.lstrip(".").split(".", 1)[0]
    raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    if compressed:
        import zlib

        raw = zlib.decompress(raw)
    payload: dict[str, Any] = json.loads(raw)
    return payload


# -- signing in ---------------------------------------------------------------------------


def test_sign_in_sets_a_strict_http_only_expiring_cookie_without_the_token(page, org):
    assert page.get("/").headers["Location"].endswith("/sign-in")
    response = page.sign_in(org.admin_token)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/api-keys")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("tenzo_dashboard=")
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Expires=" in cookie
    assert "Secure" not in cookie  # plain http here
    payload = cookie_payload(cookie)
    token_hash = credentials.hash_credential(org.admin_token)
    assert set(payload) == {"_permanent", "admin_token_id", "signed_in_at"}
    assert payload["admin_token_id"] == str(credentials.credential_id(token_hash))
    assert org.admin_token not in cookie and token_hash not in json.dumps(payload)
    keys_page = page.get("/api-keys")
    assert "Acme" in keys_page.get_data(as_text=True)
    assert keys_page.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in keys_page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in keys_page.headers["Content-Security-Policy"]


def test_the_cookie_is_secure_over_https(flask_app, org):
    page = Page(flask_app.test_client())
    page.get("/sign-in", base_url="https://localhost")
    form = {"token": org.admin_token, "csrf_token": page.csrf}
    response = page.client.post("/sign-in", data=form, base_url="https://localhost")
    assert response.status_code == 302
    assert "Secure" in response.headers["Set-Cookie"]


WRONG_TOKENS = {
    "unknown": (
        lambda org, key: credentials.mint(credentials.ADMIN_TOKEN_PREFIX).plaintext,
        "is not known here",
    ),
    "typo": (
        lambda org, key: org.admin_token[:-1] + ("A" if org.admin_token[-1] != "A" else "B"),
        "fails its checksum",
    ),
    "api key": (lambda org, key: key, "That is an API key (tenzo_pk_…)"),
    "empty": (lambda org, key: "", "No admin token was given"),
    "prefix only": (lambda org, key: "tenzo_admin_", "is truncated"),
    "not ours": (lambda org, key: "x" * 5000, "not a Tenzo admin token"),
}


def test_a_wrong_token_says_which_mistake_and_reveals_nothing(page, org, application):
    api_key = application.create_api_key(org.id, "ci", None, OPERATOR)[1]
    before = history(application)
    for case, (make, expected) in WRONG_TOKENS.items():
        wrong = make(org, api_key)
        response = page.sign_in(wrong)
        assert response.status_code == 200  # the form again, with the message
        text = response.get_data(as_text=True)
        alert = re.search(r'role="alert" id="token-error">([^<]*)<', text).group(1)
        assert expected in alert, (case, alert)
        assert len(wrong) <= len("tenzo_admin_") or wrong not in text, case
        assert "Set-Cookie" not in response.headers or "admin_token_id" not in json.dumps(
            cookie_payload(response.headers["Set-Cookie"])
        )
    assert history(application) == before
    assert page.get("/api-keys").status_code == 302


def test_every_unknown_token_gets_the_same_page(page):
    pages = set()
    for _ in range(3):
        response = page.sign_in(credentials.mint(credentials.ADMIN_TOKEN_PREFIX).plaintext)
        pages.add(CSRF_FIELD.sub("", response.get_data(as_text=True)))
    assert len(pages) == 1


def test_pages_need_a_session(page):
    for path in ("/api-keys", "/webhook", "/audit-log", "/audit-log/export"):
        response = page.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].endswith("/sign-in")


def test_sign_out_ends_the_session(signed_in):
    response = signed_in.post("/sign-out")
    assert response.status_code == 302
    assert signed_in.get("/api-keys").status_code == 302


def test_a_revoked_admin_token_ends_its_sessions_on_the_next_request(signed_in, org, application):
    token = application.repository.get(
        credentials.credential_id(credentials.hash_credential(org.admin_token))
    )
    assert isinstance(token, AdminToken)
    token.revoke(actor=OPERATOR)
    application.save(token)
    response = signed_in.get("/api-keys")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/sign-in")


def test_a_session_expires_after_eight_hours(signed_in):
    with signed_in.client.session_transaction() as session:
        session["signed_in_at"] = int(time.time() - timedelta(hours=8, minutes=1).total_seconds())
    assert signed_in.get("/api-keys").status_code == 302


# -- CSRF ---------------------------------------------------------------------------------


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(signed_in, application, org):
    application.configure_webhook(org.id, "https://example.com/hook", None, False, OPERATOR)
    before = history(application)
    for path, form in [
        ("/api-keys", {"name": "sneaky"}),
        ("/webhook", {"url": "https://example.org/other"}),
        ("/webhook/enabled", {"enabled": "true"}),
        ("/webhook/secret", {"action": "generate"}),
        ("/webhook/secret/rotate", {}),
        ("/webhook/secret/remove", {}),
        ("/webhook/delete", {}),
        ("/sign-out", {}),
    ]:
        response = signed_in.post(path, form, csrf=False)
        assert response.status_code == 400, path
        assert "could not be accepted" in response.get_data(as_text=True)
        forged = signed_in.client.post(path, data=form | {"csrf_token": "forged"})
        assert forged.status_code == 400, path
    assert history(application) == before
    assert signed_in.get("/api-keys").status_code == 200  # still signed in


def test_sign_in_needs_the_csrf_token_too(page, org):
    page.get("/sign-in")
    response = page.post("/sign-in", {"token": org.admin_token}, csrf=False)
    assert response.status_code == 400
    assert page.get("/api-keys").status_code == 302


def test_another_sessions_csrf_token_is_refused(flask_app, signed_in, org, application):
    other = Page(flask_app.test_client())
    other.sign_in(org.admin_token)
    before = history(application)
    response = signed_in.client.post("/api-keys", data={"name": "x", "csrf_token": "nope"})
    assert response.status_code == 400
    other.get("/api-keys")
    response = signed_in.client.post("/api-keys", data={"name": "x", "csrf_token": other.csrf})
    assert response.status_code == 400
    assert history(application) == before


# -- API keys -----------------------------------------------------------------------------


def test_a_new_key_is_shown_once_then_listed_by_its_hint(signed_in, application, org):
    posted = signed_in.post("/api-keys", {"name": "Greenhouse sync", "expires_on": "2099-12-31"})
    assert posted.status_code == 302  # Post/Redirect/Get: a reload creates nothing
    assert posted.headers["Location"].endswith("/api-keys")
    with signed_in.client.session_transaction() as session:
        cookie_content = repr(dict(session))  # the key waits there, sealed
    response = signed_in.get("/api-keys")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    plaintext = re.search(r">(tenzo_pk_\w+)</textarea>", text).group(1)
    assert "will not be shown again" in text
    assert response.headers["Cache-Control"] == "no-store"
    assert plaintext not in cookie_content and plaintext[9:] not in cookie_content
    key = application.authenticate_api_key(plaintext)
    assert key.name == "Greenhouse sync"
    assert key.expires_at.isoformat() == "2100-01-01T00:00:00+00:00"  # through the 31st, UTC
    listed = signed_in.get("/api-keys").get_data(as_text=True)
    assert plaintext not in listed
    assert key.key_hint in listed and "never" in listed and "Active" in listed


def test_a_key_list_the_catalog_cannot_answer_yet_is_a_page_error(signed_in, application, org):
    application.catalog.follower.close()  # nothing applies the writes that follow
    application.catalog.wait_seconds = 0.1
    posted = signed_in.post("/api-keys", {"name": "Greenhouse sync", "expires_on": ""})
    assert posted.status_code == 302

    response = signed_in.get("/api-keys")

    assert response.status_code == 200
    assert response.content_type.startswith("text/html")
    text = response.get_data(as_text=True)
    assert re.search(r'class="error-summary" role="alert">The index of this organization', text)
    assert re.search(r">(tenzo_pk_\w+)</textarea>", text)  # the new key is still shown once


def test_the_key_list_reads_usage_in_one_query(flask_app, signed_in, application, org, monkeypatch):
    keys = [application.create_api_key(org.id, f"key {n}", None, OPERATOR)[0] for n in range(5)]
    usage = flask_app.extensions["tenzo"].usage
    for _ in range(7):
        usage.record(keys[2].id, application.clock())
    usage.flush()

    statements = usage_statements(monkeypatch)
    listed = signed_in.get("/api-keys")
    assert listed.status_code == 200
    assert len(statements) == 1, statements
    rows = re.findall(r"<tr\b.*?</tr>", listed.get_data(as_text=True), re.DOTALL)
    counted = [row for row in rows if keys[2].key_hint in row]
    assert len(counted) == 1 and re.search(r">\s*7\s*<", counted[0]), counted


def test_expired_and_revoked_keys_are_marked(signed_in, application, org):
    soon = application.clock() + timedelta(seconds=1)
    expiring, _ = application.create_api_key(org.id, "short lived", soon, OPERATOR)
    revoked, _ = application.create_api_key(org.id, "retired", None, OPERATOR)
    application.revoke_api_key(org.id, revoked.id, OPERATOR)
    time.sleep(max(0.0, (soon - application.clock()).total_seconds()) + 0.1)
    text = signed_in.get("/api-keys").get_data(as_text=True)
    rows = re.findall(r'<tr class="status-(\w+)" data-key-id="([\w-]+)"', text)
    by_id = {key_id: status for status, key_id in rows}
    assert by_id[str(expiring.id)] == "expired" and by_id[str(revoked.id)] == "revoked"
    assert ">Expired</span>" in text and ">Revoked</span>" in text


@pytest.mark.parametrize(
    ("form", "api_body", "field"),
    [
        ({"name": "x" * 101}, {"name": "x" * 101}, "name"),
        ({"name": "   "}, {"name": "   "}, "name"),
        (
            {"name": "old", "expires_on": "2001-01-01"},
            {"name": "old", "expires_at": "2001-01-02T00:00:00+00:00"},
            "expires_at",
        ),
    ],
)
def test_key_form_errors_are_the_apis(signed_in, client, org, application, form, api_body, field):
    api = client.post("/admin/v1/api-keys", json=api_body, headers=org.headers)
    assert api.status_code == 422
    before = history(application)
    refused = signed_in.post("/api-keys", form)
    assert refused.status_code == 302  # to the page that shows the errors: Back works
    response = signed_in.get("/api-keys")
    shown = field_errors(response)
    assert shown[field.replace("expires_at", "expires_on")] == " ".join(api.json["errors"][field])
    assert history(application) == before


def test_a_bad_expiry_date_is_refused(signed_in, application):
    before = history(application)
    refused = signed_in.post("/api-keys", {"name": "x", "expires_on": "31/12/2099"})
    assert refused.status_code == 302
    response = signed_in.get("/api-keys")
    assert field_errors(response) == {"expires_on": "Not a valid date."}
    assert field_errors(signed_in.get("/api-keys")) == {}  # shown once
    assert history(application) == before


def test_revoking_asks_first_then_marks_the_key(signed_in, application, org):
    key, _ = application.create_api_key(org.id, "old sync", None, OPERATOR)
    confirm = signed_in.get(f"/api-keys/{key.id}/revoke")
    assert confirm.status_code == 200
    assert "Revoke the key “old sync”?" in confirm.get_data(as_text=True)
    assert application.get_api_key(org.id, key.id).status(application.clock()) == "active"
    response = signed_in.post(f"/api-keys/{key.id}/revoke")
    assert response.status_code == 302
    assert application.get_api_key(org.id, key.id).status(application.clock()) == "revoked"
    listed = signed_in.get("/api-keys").get_data(as_text=True)
    assert 'class="status-revoked"' in listed and "badge-revoked" in listed


def test_another_organizations_key_is_not_found(signed_in, application, other_org):
    key, _ = application.create_api_key(other_org.id, "theirs", None, OPERATOR)
    before = history(application)
    assert signed_in.get(f"/api-keys/{key.id}/revoke").status_code == 404
    assert signed_in.post(f"/api-keys/{key.id}/revoke").status_code == 404
    assert history(application) == before


# -- webhook ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",
        "https://user:pw@example.com/hook",
        "https://127.0.0.1/hook",
        "https:///nohost",
        "https://example.com/" + "a" * 2100,
    ],
)
def test_webhook_url_errors_are_the_apis(signed_in, client, org, application, url):
    api = client.put("/admin/v1/webhook", json={"url": url}, headers=org.headers)
    assert api.status_code == 422
    before = history(application)
    response = signed_in.post("/webhook", {"url": url})
    assert response.status_code == 200
    assert field_errors(response)["url"] == " ".join(api.json["errors"]["url"])
    assert history(application) == before


def test_configure_switch_secret_and_delete_the_webhook(signed_in, application, org):
    response = signed_in.post("/webhook", {"url": "https://example.com/hook"})
    assert response.status_code == 302
    webhook = application.get_webhook(org.id)
    assert (webhook.url, webhook.enabled, webhook.secret) == (
        "https://example.com/hook",
        False,
        None,
    )
    text = signed_in.get("/webhook").get_data(as_text=True)
    assert 'role="switch" aria-checked="false"' in text and ">not set<" in text

    signed_in.post("/webhook/enabled", {"enabled": "true"})
    assert application.get_webhook(org.id).enabled is True
    assert 'aria-checked="true"' in signed_in.get("/webhook").get_data(as_text=True)

    generated = signed_in.post("/webhook/secret", {"action": "generate"})
    assert generated.status_code == 302  # Post/Redirect/Get: a reload generates nothing
    shown = signed_in.get("/webhook").get_data(as_text=True)
    secret = re.search(r">(whsec_[\w+/=]+)</textarea>", shown).group(1)
    assert len(secret) >= 40
    assert application.get_webhook(org.id).secret == secret
    text = signed_in.get("/webhook").get_data(as_text=True)
    assert secret not in text and ">set<" in text

    too_long = signed_in.post("/webhook/secret", {"action": "set", "secret": "x" * 257})
    assert too_long.status_code == 200 and field_errors(too_long)["secret"]
    signed_in.post("/webhook/secret", {"action": "set", "secret": "my own secret"})
    assert application.get_webhook(org.id).secret == "my own secret"
    asked = signed_in.post("/webhook/secret", {"action": "remove"})  # asks first
    assert asked.headers["Location"].endswith("/webhook/secret/remove")
    assert application.get_webhook(org.id).secret == "my own secret"
    confirm = signed_in.get("/webhook/secret/remove").get_data(as_text=True)
    assert "Remove the signing secret?" in confirm
    signed_in.post("/webhook/secret/remove")
    assert application.get_webhook(org.id).secret is None

    signed_in.post("/webhook", {"url": "https://example.org/new"})
    assert application.get_webhook(org.id).url == "https://example.org/new"

    assert "Delete the webhook?" in signed_in.get("/webhook/delete").get_data(as_text=True)
    signed_in.post("/webhook/delete")
    assert "Configure your endpoint" in signed_in.get("/webhook").get_data(as_text=True)


# -- audit log ----------------------------------------------------------------------------


def test_the_audit_log_shows_filters_and_exports_this_organizations_events(
    signed_in, application, org, other_org
):
    signed_in.post("/api-keys", {"name": "audited"})
    application.create_api_key(other_org.id, "not ours", None, OPERATOR)
    application.configure_webhook(org.id, "https://example.com/h", "a secret value", True, OPERATOR)

    text = signed_in.get("/audit-log").get_data(as_text=True)
    assert "ApiKeyCreated" in text and "WebhookConfigured" in text
    assert "admin token" in text  # the actor of the key created in the page
    assert "a secret value" not in text and "[redacted]" in text
    assert "not ours" not in text

    only_keys = signed_in.get("/audit-log?type=ApiKeyCreated").get_data(as_text=True)
    assert "ApiKeyCreated" in only_keys and "WebhookConfigured</th>" not in only_keys
    none = signed_in.get("/audit-log?from=2001-01-01&to=2001-01-31").get_data(as_text=True)
    assert "No events match these filters" in none
    bad = signed_in.get("/audit-log?from=yesterday")
    assert field_errors(bad) == {"from": "Not a valid date."}

    export = signed_in.get("/audit-log/export")
    assert export.status_code == 200
    assert export.mimetype == "application/x-ndjson"
    assert "attachment" in export.headers["Content-Disposition"]
    items = [json.loads(line) for line in export.get_data(as_text=True).splitlines()]
    assert items == application.event_history(org.id, limit=1000)
    assert "a secret value" not in export.get_data(as_text=True)
    filtered = signed_in.get("/audit-log/export?type=WebhookConfigured").get_data(as_text=True)
    assert [json.loads(line)["type"] for line in filtered.splitlines()] == ["WebhookConfigured"]


def test_the_audit_log_pages_forward(signed_in, application, org, monkeypatch):
    from services.api.dashboard import views as dashboard

    monkeypatch.setattr(dashboard, "AUDIT_PAGE_SIZE", 2)
    for number in range(3):
        application.create_api_key(org.id, f"k{number}", None, OPERATOR)
    positions = [item["position"] for item in application.event_history(org.id, limit=100)]
    assert len(positions) == 5  # organization, admin token, three keys
    seen, path = [], "/audit-log"
    while path:  # newest first by default
        text = signed_in.get(path).get_data(as_text=True)
        seen += [int(p) for p in re.findall(r'data-label="#" class="num">(\d+)<', text)]
        found = re.search(r'href="(/audit-log\?before=\d+)">Next page', text)
        path = found.group(1) if found else None
    assert seen == positions[::-1]
    seen, path = [], "/audit-log?order=oldest"
    while path:
        text = signed_in.get(path).get_data(as_text=True)
        seen += [int(p) for p in re.findall(r'data-label="#" class="num">(\d+)<', text)]
        found = re.search(r'href="(/audit-log\?order=oldest&amp;after=\d+)">Next page', text)
        found = found or re.search(r'href="(/audit-log\?after=\d+&amp;order=oldest)">Next', text)
        path = found.group(1).replace("&amp;", "&") if found else None
    assert seen == positions


def test_the_audit_log_reads_as_sentences_and_finds_configuration_changes(
    signed_in, application, org
):
    signed_in.post("/api-keys", {"name": "Nightly import"})
    key = application.list_api_keys(org.id, 10)[0][0]
    application.revoke_api_key(org.id, key.id, org.admin)
    application.configure_webhook(org.id, "https://example.com/h", None, True, OPERATOR)
    delivery = application.send_test_event(org.id, org.admin)
    record_outcome(application, org.id, delivery.id, 204)
    hint = org.admin_token[-4:]  # an admin token's hint ends with its last four characters

    text = signed_in.get("/audit-log").get_data(as_text=True)
    rows = re.findall(r'<span class="event-title">([^<]*)</span>', text)
    # Newest first, in words, with names instead of class names and id fragments.
    assert rows[0] == "Delivery succeeded"
    assert "API key “Nightly import” revoked" in rows
    assert "Webhook configured: https://example.com/h" in rows
    assert f"admin token …{hint}" in text
    # The type picker matches whatever the case.
    picked = signed_in.get("/audit-log?type=apikeyrevoked").get_data(as_text=True)
    assert re.findall(r'<span class="event-title">([^<]*)</span>', picked) == [
        "API key “Nightly import” revoked"
    ]
    assert '<option value="ApiKeyRevoked" selected>' in picked
    # Configuration changes only: no delivery noise.
    config = signed_in.get("/audit-log?view=configuration").get_data(as_text=True)
    titles = re.findall(r'<span class="event-title">([^<]*)</span>', config)
    assert titles and not any(t.startswith(("Delivery", "Redelivery")) for t in titles)
    assert "Webhook configured: https://example.com/h" in titles
    export = signed_in.get("/audit-log/export?view=configuration").get_data(as_text=True)
    exported = [json.loads(line) for line in export.splitlines()]
    assert "WebhookConfigured" in [item["type"] for item in exported]
    assert not any(item["type"].startswith("Delivery") for item in exported)
    positions = [item["position"] for item in exported]
    assert positions == sorted(positions)  # the export reads oldest first
    empty = signed_in.get("/audit-log?type=JobCreated").get_data(as_text=True)
    assert "No events match these filters" in empty and "Clear the filters" in empty


@pytest.mark.parametrize(
    ("query", "field"), [("type=Not+a+type", "type"), (f"after={2**70}", "after")]
)
def test_audit_filters_are_checked_as_the_api_checks_them(signed_in, client, org, query, field):
    api = client.get(f"/admin/v1/events?{query}", headers=org.headers)
    assert api.status_code == 422
    response = signed_in.get(f"/audit-log?{query}")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert " ".join(api.json["errors"][field]) in text
    assert "<tbody>" not in text  # no events under filters that are not valid
    export = signed_in.get(f"/audit-log/export?{query}")
    assert export.status_code == 302
    assert "/audit-log" in export.headers["Location"]


# -- test events and deliveries -------------------------------------------------------------


def test_a_test_event_needs_delivery_switched_on(signed_in, application, org):
    application.configure_webhook(org.id, "https://example.com/hook", None, False, OPERATOR)
    text = signed_in.get("/webhook").get_data(as_text=True)
    assert "Send test event" not in text and "Switch delivery on" in text
    before = history(application)
    response = signed_in.post("/webhook/test")
    assert response.status_code == 302
    page = signed_in.get("/webhook").get_data(as_text=True)
    assert 'role="alert"' in page and "Webhook delivery is disabled" in page
    assert history(application) == before


def test_send_a_test_event_follow_it_and_redeliver_it(signed_in, application, org):
    application.configure_webhook(org.id, "https://example.com/hook", None, True, OPERATOR)
    response = signed_in.post("/webhook/test")
    assert response.status_code == 302  # Post/Redirect/Get: a reload repeats nothing
    location = response.headers["Location"]
    assert location.endswith("?sent=test")
    delivery_id = location.split("?")[0].rsplit("/", 1)[1]
    delivery = application.get_delivery(org.id, UUID(delivery_id))
    assert delivery.event_type == "webhook.test"

    pending = signed_in.get(location).get_data(as_text=True)
    assert "data-refresh" in pending and ">Pending<" in pending
    assert "Redeliver" not in pending
    # Under way, never a success before the outcome is known.
    assert 'role="status"' in pending and "is on its way" in pending
    assert "delivered" not in pending and "Test event sent" not in pending
    assert "webhook.test" in signed_in.get("/deliveries").get_data(as_text=True)

    before = history(application)
    signed_in.post(f"/deliveries/{delivery_id}/redeliver")  # still pending: refused
    assert history(application) == before
    assert "still in progress" in signed_in.get(f"/deliveries/{delivery_id}").get_data(as_text=True)

    record_outcome(application, org.id, UUID(delivery_id), 503, response_excerpt="nope")
    failed = signed_in.get(location).get_data(as_text=True)
    assert "data-refresh" not in failed and ">Failed<" in failed
    assert "unexpected status 503" in failed and ">nope</pre>" in failed
    assert 'role="alert"' in failed and "The test event failed." in failed
    assert "no more attempts: redeliver to try again" in failed
    listed = signed_in.get("/deliveries?status=failed").get_data(as_text=True)
    assert 'data-label="Last response"><code>503</code>' in listed

    again = signed_in.post(f"/deliveries/{delivery_id}/redeliver")
    assert again.headers["Location"].endswith("?sent=redelivery")
    assert application.get_delivery(org.id, UUID(delivery_id)).status == "pending"
    redelivering = signed_in.get(again.headers["Location"]).get_data(as_text=True)
    assert "The redelivery is on its way" in redelivering
    assert '<dd id="delivery-run">2 ' in redelivering

    record_outcome(application, org.id, UUID(delivery_id), 204)
    delivered = signed_in.get(again.headers["Location"]).get_data(as_text=True)
    assert "The redelivery was delivered: your endpoint answered 204." in delivered
    assert 'role="alert"' not in delivered


@pytest.mark.parametrize(("query", "field"), [("status=lost", "status"), ("cursor=zzz", "cursor")])
def test_delivery_filters_are_checked_as_the_api_checks_them(signed_in, client, org, query, field):
    api = client.get(f"/admin/v1/deliveries?{query}", headers=org.headers)
    assert api.status_code == 422
    text = signed_in.get(f"/deliveries?{query}").get_data(as_text=True)
    assert " ".join(api.json["errors"][field]) in text


def test_deliveries_page_back_in_time(signed_in, application, org, monkeypatch):
    from services.api.dashboard import views as dashboard

    monkeypatch.setattr(dashboard, "DELIVERY_PAGE_SIZE", 2)
    application.configure_webhook(org.id, "https://example.com/hook", None, True, OPERATOR)
    ids = [str(application.send_test_event(org.id, OPERATOR).id) for _ in range(3)]
    first = signed_in.get("/deliveries").get_data(as_text=True)
    assert re.findall(r'data-delivery-id="([\w-]+)"', first) == ids[::-1][:2]
    older = re.search(r'href="(/deliveries\?cursor=[\w=-]+)">Older deliveries', first).group(1)
    second = signed_in.get(older).get_data(as_text=True)
    assert re.findall(r'data-delivery-id="([\w-]+)"', second) == ids[:1]
    assert "Older deliveries" not in second and ">Newest<" in second


def test_another_organizations_delivery_is_not_found(signed_in, application, other_org):
    application.configure_webhook(other_org.id, "https://example.com/hook", None, True, OPERATOR)
    theirs = application.send_test_event(other_org.id, OPERATOR)
    record_outcome(application, other_org.id, theirs.id, 500)
    before = history(application)
    assert signed_in.get(f"/deliveries/{theirs.id}").status_code == 404
    assert signed_in.post(f"/deliveries/{theirs.id}/redeliver").status_code == 404
    assert history(application) == before


def test_the_key_list_pages_with_next_and_newest(signed_in, application, org, monkeypatch):
    from services.api.dashboard import views as dashboard

    monkeypatch.setattr(dashboard, "KEY_PAGE_SIZE", 2)
    ids = [
        str(application.create_api_key(org.id, f"k{n}", None, org.admin)[0].id) for n in range(3)
    ]
    first = signed_in.get("/api-keys").get_data(as_text=True)
    assert re.findall(r'data-key-id="([\w-]+)"', first) == ids[::-1][:2]
    assert ">Newest<" not in first
    older = re.search(r'href="(/api-keys\?cursor=[\w=-]+)">Next', first).group(1)
    second = signed_in.get(older).get_data(as_text=True)
    assert re.findall(r'data-key-id="([\w-]+)"', second) == ids[:1]
    assert ">Next<" not in second and ">Newest<" in second
    assert "Page:" in signed_in.get("/api-keys?cursor=zzz").get_data(as_text=True)
