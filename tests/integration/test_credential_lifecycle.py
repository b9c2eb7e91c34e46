"""SPEC 9 through the admin API, on SQLite and PostgreSQL: rolling and renaming API
keys, expires_soon, admin tokens (list, issue, revoke, the last one stays) and the
operator's recovery of a lost token. Bad input is a 4xx problem+json that changes
nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import history
from tests.support.problems import problem_of

ADMIN = "/admin/v1"


def create_key(client: Any, org: Any, name: str = "ATS sync", **extra: Any) -> dict[str, Any]:
    response = client.post(f"{ADMIN}/api-keys", json={"name": name, **extra}, headers=org.headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json


def bearer(key: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {key['key']}"}


def roll(client: Any, org: Any, key_id: str, **body: Any) -> Any:
    return client.post(f"{ADMIN}/api-keys/{key_id}/roll", json=body, headers=org.headers)


def events_of(client: Any, org: Any, aggregate_id: str) -> list[dict[str, Any]]:
    query = {"aggregate_id": aggregate_id}
    return client.get(f"{ADMIN}/events", query_string=query, headers=org.headers).json["items"]


# -- rolling a key ----------------------------------------------------------------------------


def test_rolling_gives_a_new_key_once_and_both_work_during_the_overlap(client, org):
    old = create_key(client, org)
    rolled = roll(client, org, old["id"])
    assert rolled.status_code == 201, rolled.json
    new = rolled.json
    assert new["name"] == "ATS sync" and new["rolled_from"] == old["id"]
    assert new["key"].startswith("tenzo_pk_") and new["key"] != old["key"]
    assert new["status"] == "active" and new["expires_at"] is None

    shown_old = client.get(f"{ADMIN}/api-keys/{old['id']}", headers=org.headers).json
    ends = datetime.fromisoformat(shown_old["expires_at"])
    assert timedelta(hours=23, minutes=59) < ends - datetime.now(UTC) <= timedelta(hours=24)
    assert shown_old["rolled_to"] == new["id"] and shown_old["expires_soon"] is True
    listed = client.get(f"{ADMIN}/api-keys", headers=org.headers).json["items"]
    assert [item["id"] for item in listed] == [new["id"], old["id"]]
    assert all("key" not in item for item in listed)  # shown once

    for key in (old, new):
        assert client.get("/v1/jobs", headers=bearer(key)).status_code == 200

    [rolled_event] = [e for e in events_of(client, org, old["id"]) if e["type"] == "ApiKeyRolled"]
    assert rolled_event["data"]["rolled_to"] == new["id"]
    assert rolled_event["actor"] == {"type": "admin_token", "id": org.admin["id"]}
    [created] = events_of(client, org, new["id"])
    assert created["type"] == "ApiKeyCreated" and created["data"]["rolled_from"] == old["id"]
    assert created["data"]["key_hash"] == "[redacted]"


def test_the_old_key_works_until_its_end_and_is_refused_right_after(client, org, application):
    old = create_key(client, org)
    now = datetime.now(UTC)
    application.clock = lambda: now
    new = roll(client, org, old["id"], expires_in_hours=1).json
    ends = now + timedelta(hours=1)
    shown = client.get(f"{ADMIN}/api-keys/{old['id']}", headers=org.headers).json
    assert datetime.fromisoformat(shown["expires_at"]) == ends

    application.clock = lambda: ends - timedelta(microseconds=1)
    assert client.get("/v1/jobs", headers=bearer(old)).status_code == 200
    application.clock = lambda: ends
    refused = problem_of(client.get("/v1/jobs", headers=bearer(old)), 401)
    assert "expired" in refused["detail"]
    assert client.get("/v1/jobs", headers=bearer(new)).status_code == 200


def test_rolling_with_zero_hours_refuses_the_old_key_from_the_next_request(client, org):
    old = create_key(client, org)
    assert client.get("/v1/jobs", headers=bearer(old)).status_code == 200
    new = roll(client, org, old["id"], expires_in_hours=0).json
    assert "expired" in problem_of(client.get("/v1/jobs", headers=bearer(old)), 401)["detail"]
    assert client.get("/v1/jobs", headers=bearer(new)).status_code == 200
    shown = client.get(f"{ADMIN}/api-keys/{old['id']}", headers=org.headers).json
    assert shown["status"] == "expired"


def test_rolling_keeps_an_earlier_expiry_of_the_old_key(client, org):
    soon = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    old = create_key(client, org, expires_at=soon)
    roll(client, org, old["id"], expires_in_hours=168)
    shown = client.get(f"{ADMIN}/api-keys/{old['id']}", headers=org.headers).json
    assert datetime.fromisoformat(shown["expires_at"]) == datetime.fromisoformat(soon)


def test_rolling_a_revoked_or_expired_key_is_409_and_changes_nothing(client, org, application):
    revoked = create_key(client, org, "revoked")
    client.post(f"{ADMIN}/api-keys/{revoked['id']}/revoke", headers=org.headers)
    expired = create_key(client, org, "expired")
    roll(client, org, expired["id"], expires_in_hours=0)
    before = history(application)
    for key in (revoked, expired):
        body = problem_of(roll(client, org, key["id"]), 409)
        assert "only an active key can be rolled" in body["detail"]
    assert history(application) == before


@pytest.mark.parametrize(
    "body",
    [
        {"expires_in_hours": -1},
        {"expires_in_hours": 169},
        {"expires_in_hours": "24"},
        {"expires_in_hours": 1.5},
        {"expires_in_hours": None},
        {"expires_in_hours": 24, "name": "x"},
    ],
    ids=["negative", "169", "string", "fraction", "null", "unknown-field"],
)
def test_a_bad_roll_is_422_and_changes_nothing(client, org, application, body):
    key = create_key(client, org)
    before = history(application)
    problem = problem_of(roll(client, org, key["id"], **body), 422)
    assert problem["errors"]
    assert history(application) == before
    assert client.get("/v1/jobs", headers=bearer(key)).status_code == 200


def test_another_organizations_key_cannot_be_rolled_or_renamed(client, org, other_org, application):
    key = create_key(client, org)
    before = history(application)
    problem_of(roll(client, other_org, key["id"]), 404)
    renamed = client.patch(
        f"{ADMIN}/api-keys/{key['id']}", json={"name": "mine"}, headers=other_org.headers
    )
    problem_of(renamed, 404)
    problem_of(roll(client, org, str(uuid.uuid4())), 404)
    assert history(application) == before


# -- renaming, expires_soon -------------------------------------------------------------------


def test_renaming_a_key(client, org):
    key = create_key(client, org, "old name")
    renamed = client.patch(
        f"{ADMIN}/api-keys/{key['id']}", json={"name": "Greenhouse sync"}, headers=org.headers
    )
    assert renamed.status_code == 200, renamed.json
    assert renamed.json["name"] == "Greenhouse sync" and "key" not in renamed.json
    assert [e["type"] for e in events_of(client, org, key["id"])] == [
        "ApiKeyCreated",
        "ApiKeyRenamed",
    ]
    assert client.get("/v1/jobs", headers=bearer(key)).status_code == 200


@pytest.mark.parametrize(
    "body",
    [{}, {"name": ""}, {"name": "   "}, {"name": "x" * 101}, {"name": 5}, {"name": "a", "b": 1}],
    ids=["missing", "empty", "blank", "101", "number", "unknown-field"],
)
def test_a_bad_rename_is_422_and_changes_nothing(client, org, application, body):
    key = create_key(client, org)
    before = history(application)
    response = client.patch(f"{ADMIN}/api-keys/{key['id']}", json=body, headers=org.headers)
    assert problem_of(response, 422)["errors"]
    assert history(application) == before


def test_expires_soon_within_seven_days(client, org):
    soon = create_key(
        client, org, "soon", expires_at=(datetime.now(UTC) + timedelta(days=6)).isoformat()
    )
    later = create_key(
        client, org, "later", expires_at=(datetime.now(UTC) + timedelta(days=8)).isoformat()
    )
    never = create_key(client, org, "never")
    listed = {
        item["name"]: item["expires_soon"]
        for item in client.get(f"{ADMIN}/api-keys", headers=org.headers).json["items"]
    }
    assert listed == {"soon": True, "later": False, "never": False}
    for key, expected in ((soon, True), (later, False), (never, False)):
        shown = client.get(f"{ADMIN}/api-keys/{key['id']}", headers=org.headers).json
        assert shown["expires_soon"] is expected


# -- admin tokens -----------------------------------------------------------------------------


def test_issue_use_list_and_revoke_an_admin_token(client, flask_app, org, application):
    issued = client.post(f"{ADMIN}/admin-tokens", json={"name": "CI"}, headers=org.headers)
    assert issued.status_code == 201, issued.json
    token = issued.json
    assert token["token"].startswith("tenzo_admin_") and token["status"] == "active"
    assert token["token_hint"].endswith(token["token"][-4:]) and token["last_used_at"] is None
    theirs = {"Authorization": f"Bearer {token['token']}"}
    assert client.get(f"{ADMIN}/api-keys", headers=theirs).status_code == 200
    flask_app.extensions["tenzo"].usage.flush()

    listed = client.get(f"{ADMIN}/admin-tokens", headers=org.headers).json["items"]
    assert [item["name"] for item in listed] == ["CI", "First admin token"]
    assert all("token" not in item for item in listed)
    assert set(listed[0]) == {
        "id",
        "name",
        "token_hint",
        "created_at",
        "last_used_at",
        "status",
        "revoked_at",
    }
    used = datetime.fromisoformat(listed[0]["last_used_at"])
    assert datetime.now(UTC) - used < timedelta(seconds=10)

    before = len(history(application))
    revoked = client.post(f"{ADMIN}/admin-tokens/{token['id']}/revoke", headers=org.headers)
    assert revoked.status_code == 200 and revoked.json["status"] == "revoked"
    assert "revoked" in problem_of(client.get(f"{ADMIN}/api-keys", headers=theirs), 401)["detail"]
    assert len(history(application)) == before + 2  # the token's and the organization's
    again = client.post(f"{ADMIN}/admin-tokens/{token['id']}/revoke", headers=org.headers)
    assert again.status_code == 200 and len(history(application)) == before + 2


def test_admin_token_use_writes_no_event(client, org, application):
    before = history(application)
    for _ in range(3):
        assert client.get(f"{ADMIN}/admin-tokens", headers=org.headers).status_code == 200
    assert history(application) == before


def test_revoking_the_last_active_admin_token_is_409_and_changes_nothing(client, org, application):
    before = history(application)
    response = client.post(f"{ADMIN}/admin-tokens/{org.admin['id']}/revoke", headers=org.headers)
    assert "last active" in problem_of(response, 409)["detail"]
    assert history(application) == before
    assert client.get(f"{ADMIN}/admin-tokens", headers=org.headers).status_code == 200


@pytest.mark.parametrize(
    "body", [{}, {"name": ""}, {"name": "x" * 101}, {"name": "a", "b": 1}, {"name": None}]
)
def test_a_bad_admin_token_name_is_422_and_changes_nothing(client, org, application, body):
    before = history(application)
    response = client.post(f"{ADMIN}/admin-tokens", json=body, headers=org.headers)
    assert problem_of(response, 422)["errors"]
    assert history(application) == before


def test_another_organizations_admin_token_is_not_found(client, org, other_org, application):
    before = history(application)
    response = client.post(
        f"{ADMIN}/admin-tokens/{org.admin['id']}/revoke", headers=other_org.headers
    )
    problem_of(response, 404)
    assert history(application) == before
    listed = client.get(f"{ADMIN}/admin-tokens", headers=other_org.headers).json["items"]
    assert [item["id"] for item in listed] == [other_org.admin["id"]]


# -- operator recovery ------------------------------------------------------------------------


def test_the_operator_issues_a_token_to_recover_a_lost_one(client, org, operator_headers):
    url = f"{ADMIN}/organizations/{org.id}/admin-tokens"
    issued = client.post(url, json={"name": "recovery"}, headers=operator_headers)
    assert issued.status_code == 201, issued.json
    recovered = {"Authorization": f"Bearer {issued.json['token']}"}
    # The recovered token revokes the lost one.
    lost = client.post(f"{ADMIN}/admin-tokens/{org.admin['id']}/revoke", headers=recovered)
    assert lost.status_code == 200 and lost.json["status"] == "revoked"
    problem_of(client.get(f"{ADMIN}/api-keys", headers=org.headers), 401)
    events = client.get(
        f"{ADMIN}/events", query_string={"type": "AdminTokenIssued"}, headers=recovered
    ).json["items"]
    assert events[-1]["actor"] == {"type": "operator", "id": None}


def test_only_the_operator_issues_for_an_organization(
    client, org, other_org, operator_headers, application
):
    url = f"{ADMIN}/organizations/{org.id}/admin-tokens"
    before = history(application)
    problem_of(client.post(url, json={"name": "x"}, headers=org.headers), 401)
    problem_of(client.post(url, json={"name": "x"}, headers=other_org.headers), 401)
    problem_of(client.post(url, json={"name": ""}, headers=operator_headers), 422)
    unknown = f"{ADMIN}/organizations/{uuid.uuid4()}/admin-tokens"
    problem_of(client.post(unknown, json={"name": "x"}, headers=operator_headers), 404)
    assert history(application) == before
