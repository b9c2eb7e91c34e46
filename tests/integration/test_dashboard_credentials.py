"""The dashboard's credential forms through Flask's test client, on SQLite and PostgreSQL
(SPEC 9): rolling and renaming keys, hiding revoked keys, expiry as the chosen day, and
the Admin tokens tab. Every form answers with a redirect, and a secret is shown on the
first page after it only (the browser's reload and Back: tests/e2e/test_dashboard.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from domain.actors import OPERATOR
from tests.conftest import history
from tests.integration.test_dashboard import Page, field_errors

NEW_KEY = re.compile(r'id="new-key"[^>]*>(tenzo_pk_\w+)</textarea>')
NEW_TOKEN = re.compile(r'id="new-token"[^>]*>(tenzo_admin_\w+)</textarea>')


@pytest.fixture
def signed_in(client: Any, org: Any) -> Page:
    page = Page(client)
    assert page.sign_in(org.admin_token).status_code == 302
    page.get("/api-keys")
    return page


def text(response: Any) -> str:
    return str(response.get_data(as_text=True))


def test_roll_asks_for_the_overlap_then_shows_the_new_key_once(signed_in, application, org):
    old, old_plaintext = application.create_api_key(org.id, "ATS sync", None, OPERATOR)
    form = signed_in.get(f"/api-keys/{old.id}/roll")
    assert form.status_code == 200
    assert 'name="expires_in_hours"' in text(form) and 'value="24"' in text(form)

    posted = signed_in.post(f"/api-keys/{old.id}/roll", {"expires_in_hours": "24"})
    assert posted.status_code == 302 and posted.headers["Location"].endswith("/api-keys")
    shown = signed_in.get("/api-keys")
    plaintext = NEW_KEY.search(text(shown)).group(1)
    new = application.authenticate_api_key(plaintext)
    assert new.rolled_from == old.id and new.name == "ATS sync"
    assert "(rolled)" in text(shown)
    again = text(signed_in.get("/api-keys"))  # a reload: the key is gone, the roll not repeated
    assert plaintext not in again and not NEW_KEY.search(again)
    assert re.search(r"expires in 2[34] h \(rolled\)", again)
    assert application.authenticate_api_key(old_plaintext).id == old.id  # until the end
    assert len(application.list_api_keys(org.id)[0]) == 2


@pytest.mark.parametrize("hours", ["", "-1", "169", "1.5", "soon"])
def test_a_bad_overlap_is_shown_by_its_field_and_changes_nothing(
    signed_in, application, org, hours
):
    key, _ = application.create_api_key(org.id, "ATS sync", None, OPERATOR)
    signed_in.get(f"/api-keys/{key.id}/roll")
    before = history(application)
    refused = signed_in.post(f"/api-keys/{key.id}/roll", {"expires_in_hours": hours})
    assert refused.status_code == 302  # back to the form, which shows why: Back works
    response = signed_in.get(refused.headers["Location"])
    assert "expires_in_hours" in field_errors(response)
    assert history(application) == before


def test_rolling_a_revoked_key_says_why_and_changes_nothing(signed_in, application, org):
    key, _ = application.create_api_key(org.id, "old", None, OPERATOR)
    signed_in.get(f"/api-keys/{key.id}/roll")  # the form, open while the key is revoked
    application.revoke_api_key(org.id, key.id, OPERATOR)
    before = history(application)
    posted = signed_in.post(f"/api-keys/{key.id}/roll", {"expires_in_hours": "24"})
    assert posted.status_code == 302
    assert "only an active key can be rolled" in text(signed_in.get("/api-keys"))
    assert history(application) == before


def test_rename_in_place(signed_in, application, org):
    key, _ = application.create_api_key(org.id, "old name", None, OPERATOR)
    signed_in.get("/api-keys")
    posted = signed_in.post(f"/api-keys/{key.id}/rename", {"name": "Greenhouse sync"})
    assert posted.status_code == 302
    page = text(signed_in.get("/api-keys"))
    assert "is now named “Greenhouse sync”" in page
    assert application.get_api_key(org.id, key.id).name == "Greenhouse sync"
    before = history(application)
    refused = signed_in.post(f"/api-keys/{key.id}/rename", {"name": "x" * 101})
    assert refused.status_code == 302
    assert "was not renamed" in text(signed_in.get("/api-keys"))
    assert history(application) == before


def test_revoked_keys_can_be_hidden(signed_in, application, org):
    kept, _ = application.create_api_key(org.id, "kept", None, OPERATOR)
    gone, _ = application.create_api_key(org.id, "gone", None, OPERATOR)
    application.revoke_api_key(org.id, gone.id, OPERATOR)
    everything = text(signed_in.get("/api-keys"))
    assert str(kept.id) in everything and str(gone.id) in everything
    filtered = text(signed_in.get("/api-keys?hide=revoked"))
    assert str(kept.id) in filtered and str(gone.id) not in filtered
    assert "1 revoked key hidden." in filtered


def test_expiry_is_the_chosen_day_and_a_key_expiring_soon_stands_out(signed_in, application, org):
    signed_in.post("/api-keys", {"name": "yearly", "expires_on": "2099-01-31"})
    soon = datetime.now(UTC) + timedelta(days=3)
    application.create_api_key(org.id, "soon", soon, OPERATOR)
    page = text(signed_in.get("/api-keys"))
    assert "Jan 31, 2099, end of day UTC" in page
    assert "Feb 1, 2099" not in page
    assert page.count("Expires soon</span>") == 1
    assert re.search(r'class="status-active expires-soon"', page)


def test_the_list_comes_before_the_form(signed_in):
    page = text(signed_in.get("/api-keys"))
    assert page.index('id="keys-title"') < page.index('id="generate-title"')


def test_issue_a_token_once_then_revoke_it(signed_in, application, org):
    tab = text(signed_in.get("/admin-tokens"))
    assert "First admin token" in tab and "(this session)" in tab
    posted = signed_in.post("/admin-tokens", {"name": "Deploy pipeline"})
    assert posted.status_code == 302 and posted.headers["Location"].endswith("/admin-tokens")
    shown = text(signed_in.get("/admin-tokens"))
    plaintext = NEW_TOKEN.search(shown).group(1)
    org_id, actor = application.authenticate_admin(plaintext)
    assert org_id == org.id
    assert plaintext not in text(signed_in.get("/admin-tokens"))  # once
    assert len(application.list_admin_tokens(org.id)) == 2

    confirm = signed_in.get(f"/admin-tokens/{actor['id']}/revoke")
    assert "Revoke the admin token “Deploy pipeline”?" in text(confirm)
    revoked = signed_in.post(f"/admin-tokens/{actor['id']}/revoke")
    assert revoked.status_code == 302
    assert "is revoked" in text(signed_in.get("/admin-tokens"))
    assert application.get_admin_token(org.id, UUID(actor["id"])).revoked


def test_the_last_active_token_stays_and_a_bad_name_is_refused(signed_in, application, org):
    before = history(application)
    signed_in.get(f"/admin-tokens/{org.admin['id']}/revoke")
    posted = signed_in.post(f"/admin-tokens/{org.admin['id']}/revoke")
    assert posted.status_code == 302
    assert "last active" in text(signed_in.get("/admin-tokens"))
    refused = signed_in.post("/admin-tokens", {"name": "x" * 101})
    assert refused.status_code == 302
    assert "name" in field_errors(signed_in.get("/admin-tokens"))
    assert history(application) == before


def test_revoking_the_sessions_own_token_signs_it_out(signed_in, application, org):
    application.issue_admin_token(org.id, "spare", OPERATOR)
    signed_in.get(f"/admin-tokens/{org.admin['id']}/revoke")
    signed_in.post(f"/admin-tokens/{org.admin['id']}/revoke")
    after = signed_in.get("/admin-tokens")
    assert after.status_code == 302 and after.headers["Location"].endswith("/sign-in")
