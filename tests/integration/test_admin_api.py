"""The admin API (SPEC 5.1, 5.2, 8) through Flask's test client, on SQLite and PostgreSQL.

Every bad input gets a 4xx application/problem+json that says what is wrong, and
changes nothing: the event history is the same before and after.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain.actors import OPERATOR
from domain.credentials import ADMIN_TOKEN_PREFIX, API_KEY_PREFIX, mint
from tests.conftest import history
from tests.support.problems import problem_of
from tests.support.sql_statements import usage_statements

ADMIN = "/admin/v1"
WEBHOOK_URL = "https://93.184.215.14/webhooks/tenzo"
SECRET = "whsec-correct-horse-battery"


def later(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


def create_key(client: Any, org: Any, name: str = "ci", **extra: Any) -> dict[str, Any]:
    response = client.post(f"{ADMIN}/api-keys", json={"name": name, **extra}, headers=org.headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json


def put_webhook(client: Any, org: Any, **body: Any) -> Any:
    return client.put(f"{ADMIN}/webhook", json={"url": WEBHOOK_URL, **body}, headers=org.headers)


def events(client: Any, org: Any, **query: Any) -> dict[str, Any]:
    response = client.get(f"{ADMIN}/events", query_string=query, headers=org.headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json


def event_types(client: Any, org: Any, **query: Any) -> list[str]:
    return [item["type"] for item in events(client, org, limit=1000, **query)["items"]]


# -- organizations (operator) --------------------------------------------------------


def test_the_operator_creates_an_organization_whose_token_works(client, operator_headers):
    response = client.post(
        f"{ADMIN}/organizations", json={"name": "Initech"}, headers=operator_headers
    )
    assert response.status_code == 201
    body = response.json
    assert set(body) == {"id", "name", "created_at", "admin_token"}
    assert body["name"] == "Initech"
    assert body["admin_token"].startswith(ADMIN_TOKEN_PREFIX)
    uuid.UUID(body["id"])
    datetime.fromisoformat(body["created_at"])

    headers = {"Authorization": f"Bearer {body['admin_token']}"}
    assert client.get(f"{ADMIN}/api-keys", headers=headers).json == {
        "items": [],
        "next_cursor": None,
    }
    history_items = client.get(f"{ADMIN}/events", headers=headers).json["items"]
    assert [item["type"] for item in history_items] == ["OrganizationCreated", "AdminTokenIssued"]
    assert history_items[0]["actor"] == {"type": "operator", "id": None}
    assert body["admin_token"] not in json.dumps(history_items)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-operator-token"},
        {"Authorization": "Basic b3BlcmF0b3I6cGFzcw=="},
    ],
    ids=["no-token", "wrong-token", "basic-auth"],
)
def test_the_operator_endpoint_needs_the_operator_token(client, application, headers):
    before = history(application)
    response = client.post(f"{ADMIN}/organizations", json={"name": "Initech"}, headers=headers)
    problem_of(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert history(application) == before


def test_an_admin_token_is_not_the_operator_token(client, application, org):
    before = history(application)
    response = client.post(f"{ADMIN}/organizations", json={"name": "Initech"}, headers=org.headers)
    problem_of(response, 401)
    assert history(application) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "\t\n\u00a0"}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": 7}, "name"),
        ({"name": "x", "y": 1}, "y"),
    ],
    ids=["missing", "empty", "spaces", "whitespace", "201-chars", "number", "unknown-field"],
)
def test_the_operator_endpoint_validates_its_body(
    client, application, operator_headers, body, field
):
    before = history(application)
    response = client.post(f"{ADMIN}/organizations", json=body, headers=operator_headers)
    assert field in problem_of(response, 422)["errors"]
    assert history(application) == before


# -- API keys: happy paths -----------------------------------------------------------


def test_create_list_get_revoke_an_api_key(client, org, application):
    expires_at = later(days=30)
    created = create_key(client, org, "Greenhouse sync", expires_at=expires_at)
    key = created.pop("key")
    assert key.startswith(API_KEY_PREFIX)
    assert created["name"] == "Greenhouse sync"
    assert created["key_hint"] == f"{API_KEY_PREFIX}…{key[-4:]}"
    assert created["status"] == "active"
    assert created["usage_count"] == 0 and created["last_used_at"] is None
    assert created["revoked_at"] is None
    assert datetime.fromisoformat(created["expires_at"]) == datetime.fromisoformat(expires_at)
    datetime.fromisoformat(created["created_at"])

    second = create_key(client, org, "Lever sync")
    listed = client.get(f"{ADMIN}/api-keys", headers=org.headers)
    assert listed.status_code == 200
    items = listed.json["items"]
    assert [item["id"] for item in items] == [second["id"], created["id"]]  # newest first
    assert items[1] == created
    assert key not in listed.get_data(as_text=True)
    assert second["key"] not in listed.get_data(as_text=True)

    one = client.get(f"{ADMIN}/api-keys/{created['id']}", headers=org.headers)
    assert one.status_code == 200 and one.json == created

    revoked = client.post(f"{ADMIN}/api-keys/{created['id']}/revoke", headers=org.headers)
    assert revoked.status_code == 200
    assert revoked.json["status"] == "revoked"
    assert datetime.fromisoformat(revoked.json["revoked_at"]) <= datetime.now(UTC)
    assert "key" not in revoked.json
    statuses = {
        i["id"]: i["status"]
        for i in client.get(f"{ADMIN}/api-keys", headers=org.headers).json["items"]
    }
    assert statuses == {created["id"]: "revoked", second["id"]: "active"}
    assert (
        application.get_api_key(org.id, uuid.UUID(created["id"])).status(datetime.now(UTC))
        == "revoked"
    )


def test_an_expiry_without_offset_is_utc(client, org):
    naive = (datetime.now(UTC) + timedelta(days=1)).replace(tzinfo=None, microsecond=0)
    created = create_key(client, org, expires_at=naive.isoformat())
    assert datetime.fromisoformat(created["expires_at"]) == naive.replace(tzinfo=UTC)


def test_a_key_past_its_expiry_is_listed_as_expired(client, org, application):
    created = create_key(client, org, expires_at=later(seconds=30))
    application.clock = lambda: datetime.now(UTC) + timedelta(minutes=1)
    one = client.get(f"{ADMIN}/api-keys/{created['id']}", headers=org.headers)
    assert one.json["status"] == "expired"


def test_revoking_twice_is_200_and_records_one_event(client, org, application):
    created = create_key(client, org)
    path = f"{ADMIN}/api-keys/{created['id']}/revoke"
    first = client.post(path, headers=org.headers)
    before = history(application)
    second = client.post(path, headers=org.headers)
    assert second.status_code == 200
    assert second.json == first.json
    assert history(application) == before
    assert event_types(client, org, type="ApiKeyRevoked") == ["ApiKeyRevoked"]


def test_organizations_see_only_their_own_keys(client, org, other_org, application):
    mine = create_key(client, org, "mine")
    theirs = create_key(client, other_org, "theirs")
    assert [
        i["id"] for i in client.get(f"{ADMIN}/api-keys", headers=org.headers).json["items"]
    ] == [mine["id"]]
    before = history(application)
    for method, path in [
        ("get", f"{ADMIN}/api-keys/{theirs['id']}"),
        ("post", f"{ADMIN}/api-keys/{theirs['id']}/revoke"),
    ]:
        body = problem_of(getattr(client, method)(path, headers=org.headers), 404)
        assert theirs["id"] not in body["detail"]
    assert history(application) == before
    still = client.get(f"{ADMIN}/api-keys/{theirs['id']}", headers=other_org.headers)
    assert still.json["status"] == "active"


def test_listing_keys_reads_their_usage_in_one_query(flask_app, client, org, monkeypatch):
    keys = [create_key(client, org, f"key {n}") for n in range(6)]
    for uses, key in enumerate(keys[:4]):
        for _ in range(uses):  # 0, 1, 2, 3 uses; the last two keys never used
            client.get("/v1/jobs", headers={"Authorization": f"Bearer {key['key']}"})
    flask_app.extensions["tenzo"].usage.flush()

    statements = usage_statements(monkeypatch)
    listed = client.get(f"{ADMIN}/api-keys", headers=org.headers).json["items"]
    assert len(statements) == 1, statements
    counts = {item["id"]: item["usage_count"] for item in listed}
    assert counts == {key["id"]: n if n < 4 else 0 for n, key in enumerate(keys)}
    used = {item["id"] for item in listed if item["last_used_at"] is not None}
    assert used == {key["id"] for key in keys[1:4]}
    shown = client.get(f"{ADMIN}/api-keys/{keys[3]['id']}", headers=org.headers).json
    assert shown["usage_count"] == 3 and shown["last_used_at"] is not None


@pytest.mark.parametrize("key_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_an_unknown_key_id_is_404(client, org, application, key_id):
    before = history(application)
    problem_of(client.get(f"{ADMIN}/api-keys/{key_id}", headers=org.headers), 404)
    problem_of(client.post(f"{ADMIN}/api-keys/{key_id}/revoke", headers=org.headers), 404)
    assert history(application) == before


def test_an_admin_token_is_not_an_api_key_id(client, org, other_org, application):
    """The id of an AdminToken aggregate is not an API key, even for its own org."""
    token_events = [
        item for item in events(client, org)["items"] if item["type"] == "AdminTokenIssued"
    ]
    problem_of(
        client.get(f"{ADMIN}/api-keys/{token_events[0]['aggregate_id']}", headers=org.headers),
        404,
    )


# -- API keys: bad input -------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": "ci", "scopes": ["all"]}, "scopes"),
        ({"name": "x" * 101}, "name"),
        ({"name": 42}, "name"),
        ({"name": None}, "name"),
        ({"name": ["ci"]}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "ci", "expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "ci", "expires_at": "next tuesday"}, "expires_at"),
        ({"name": "ci", "expires_at": "2030-13-45T99:00:00Z"}, "expires_at"),
        ({"name": "ci", "expires_at": 1893456000}, "expires_at"),
    ],
    ids=[
        "missing-name",
        "unknown-field",
        "oversized-name",
        "name-number",
        "name-null",
        "name-list",
        "empty-name",
        "blank-name",
        "expiry-in-the-past",
        "expiry-not-iso",
        "expiry-impossible-date",
        "expiry-number",
    ],
)
def test_bad_api_key_bodies_are_422_and_change_nothing(client, org, application, body, field):
    before = history(application)
    response = client.post(f"{ADMIN}/api-keys", json=body, headers=org.headers)
    problem = problem_of(response, 422)
    assert list(problem["errors"]) == [field]
    assert all(problem["errors"][field])
    assert field in problem["detail"] or problem["errors"][field][0] in problem["detail"]
    assert history(application) == before


@pytest.mark.parametrize("body", [[], ["name"], "ci", 42])
def test_a_json_body_that_is_not_an_object_is_422(client, org, application, body):
    before = history(application)
    problem = problem_of(client.post(f"{ADMIN}/api-keys", json=body, headers=org.headers), 422)
    assert list(problem["errors"]) == ["body"]
    assert history(application) == before


@pytest.mark.parametrize(
    ("method", "path"), [("post", "/api-keys"), ("put", "/webhook"), ("patch", "/webhook")]
)
@pytest.mark.parametrize("raw", ['{"name": "ci"', "{'name': 'ci'}", "name=ci", "\xff\xfe"])
def test_malformed_json_is_400(client, org, application, method, path, raw):
    put_webhook(client, org)
    before = history(application)
    response = getattr(client, method)(
        ADMIN + path,
        data=raw.encode("latin-1"),
        headers=org.headers,
        content_type="application/json",
    )
    assert "JSON" in problem_of(response, 400)["detail"]
    assert history(application) == before


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
@pytest.mark.parametrize(("method", "path"), [("post", "/api-keys"), ("put", "/webhook")])
def test_a_body_that_is_not_json_is_415(client, org, application, content_type, method, path):
    before = history(application)
    response = getattr(client, method)(
        ADMIN + path, data='{"name": "ci"}', headers=org.headers, content_type=content_type
    )
    assert "application/json" in problem_of(response, 415)["detail"]
    assert history(application) == before


@pytest.mark.parametrize(("method", "path"), [("post", "/api-keys"), ("put", "/webhook")])
def test_a_2_mib_body_is_413(client, org, application, method, path):
    before = history(application)
    body = json.dumps({"name": "x" * (2 * 1024 * 1024)})
    response = getattr(client, method)(
        ADMIN + path, data=body, headers=org.headers, content_type="application/json"
    )
    assert "1 MiB" in problem_of(response, 413)["detail"]
    assert history(application) == before


# -- authentication ------------------------------------------------------------------


def broken_tokens(token: str) -> dict[str, str]:
    flipped = token[-1].swapcase() if token[-1].isalpha() else str((int(token[-1]) + 1) % 10)
    middle = len(token) // 2
    other = "A" if token[middle] != "A" else "B"
    return {
        "truncated": token[:-1],
        "checksum-broken": token[:-1] + flipped,
        "typo": token[:middle] + other + token[middle + 1 :],
        "well-formed-unknown": mint(ADMIN_TOKEN_PREFIX).plaintext,
        "api-key": mint(API_KEY_PREFIX).plaintext,
        "extra-char": token + "A",
        "lowercase-scheme-and-space": f"{token} {token}",
    }


@pytest.mark.parametrize(
    "case",
    [
        "truncated",
        "checksum-broken",
        "typo",
        "well-formed-unknown",
        "api-key",
        "extra-char",
        "lowercase-scheme-and-space",
    ],
)
def test_a_bad_admin_token_is_401_with_one_body(client, org, application, case):
    token = broken_tokens(org.admin_token)[case]
    before = history(application)
    responses = [
        client.get(f"{ADMIN}/api-keys", headers={"Authorization": f"Bearer {token}"}),
        client.post(
            f"{ADMIN}/api-keys", json={"name": "ci"}, headers={"Authorization": f"Bearer {token}"}
        ),
        client.put(
            f"{ADMIN}/webhook",
            json={"url": WEBHOOK_URL},
            headers={"Authorization": f"Bearer {token}"},
        ),
    ]
    bodies = {json.dumps(problem_of(response, 401), sort_keys=True) for response in responses}
    assert len(bodies) == 1  # the same body whatever the reason
    for response in responses:
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert token not in response.get_data(as_text=True)
    assert history(application) == before


def test_a_real_api_key_is_refused_on_the_admin_api(client, org, application):
    key = create_key(client, org)["key"]
    before = history(application)
    problem_of(client.get(f"{ADMIN}/api-keys", headers={"Authorization": f"Bearer {key}"}), 401)
    assert history(application) == before


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": ""}, {"Authorization": "Bearer"}, {"Authorization": "Token abc"}],
)
def test_no_admin_token_is_401(client, application, headers):
    before = history(application)
    for response in (
        client.get(f"{ADMIN}/api-keys", headers=headers),
        client.post(f"{ADMIN}/api-keys", json={"name": "x"}, headers=headers),
    ):
        problem_of(response, 401)
        assert response.headers["WWW-Authenticate"] == "Bearer"  # SPEC 5.3, no realm
    assert history(application) == before


def test_a_token_in_the_query_string_is_refused(client, org, application):
    before = history(application)
    response = client.get(f"{ADMIN}/api-keys", query_string={"access_token": org.admin_token})
    problem_of(response, 401)
    response = client.get(
        f"{ADMIN}/api-keys", query_string={"token": org.admin_token}, headers=org.headers
    )
    problem_of(response, 401)
    assert history(application) == before


# -- webhook: happy paths ------------------------------------------------------------


def test_webhook_lifecycle(client, org, application):
    assert problem_of(client.get(f"{ADMIN}/webhook", headers=org.headers), 404)

    created = put_webhook(client, org)
    assert created.status_code == 201
    body = created.json
    assert set(body) == {"url", "enabled", "secret_set", "created_at", "updated_at"}
    assert body["url"] == WEBHOOK_URL
    assert body["enabled"] is False  # delivery is off until switched on
    assert body["secret_set"] is False
    shown = client.get(f"{ADMIN}/webhook", headers=org.headers).json
    assert set(shown) == set(body) | {"disabled_reason", "health"}  # SPEC 10
    assert {name: shown[name] for name in body} == body

    replaced = put_webhook(client, org, secret=SECRET, enabled=True)
    assert replaced.status_code == 200
    assert replaced.json["enabled"] is True and replaced.json["secret_set"] is True
    assert replaced.json["created_at"] == body["created_at"]
    assert replaced.json["updated_at"] >= body["updated_at"]
    assert SECRET not in replaced.get_data(as_text=True)

    disabled = client.patch(f"{ADMIN}/webhook", json={"enabled": False}, headers=org.headers)
    assert disabled.status_code == 200 and disabled.json["enabled"] is False
    enabled = client.patch(f"{ADMIN}/webhook", json={"enabled": True}, headers=org.headers)
    assert enabled.status_code == 200 and enabled.json["enabled"] is True

    moved = client.patch(
        f"{ADMIN}/webhook",
        json={"url": "https://93.184.215.14/v2", "secret": None},
        headers=org.headers,
    )
    assert moved.status_code == 200
    assert moved.json["url"] == "https://93.184.215.14/v2"
    assert moved.json["secret_set"] is False and moved.json["enabled"] is True

    deleted = client.delete(f"{ADMIN}/webhook", headers=org.headers)
    assert deleted.status_code == 204 and deleted.get_data() == b""
    assert "Content-Type" not in deleted.headers
    problem_of(client.get(f"{ADMIN}/webhook", headers=org.headers), 404)
    before = history(application)
    problem_of(client.delete(f"{ADMIN}/webhook", headers=org.headers), 404)
    assert history(application) == before

    again = put_webhook(client, org)
    assert again.status_code == 201 and again.json["enabled"] is False

    assert event_types(client, org, aggregate_id=application.get_webhook(org.id).id) == [
        "WebhookConfigured",
        "WebhookReplaced",
        "WebhookDisabled",
        "WebhookEnabled",
        "WebhookUrlChanged",
        "WebhookSecretChanged",
        "WebhookDeleted",
        "WebhookReplaced",
    ]


def test_patch_records_one_event_per_changed_field_and_none_for_no_change(client, org, application):
    put_webhook(client, org)
    response = client.patch(
        f"{ADMIN}/webhook",
        json={"url": "https://93.184.215.14/b", "secret": SECRET, "enabled": True},
        headers=org.headers,
    )
    assert response.status_code == 200
    assert event_types(client, org)[-3:] == [
        "WebhookUrlChanged",
        "WebhookSecretChanged",
        "WebhookEnabled",
    ]
    before = history(application)
    same = client.patch(
        f"{ADMIN}/webhook",
        json={"url": "https://93.184.215.14/b", "enabled": True},
        headers=org.headers,
    )
    assert same.status_code == 200
    assert client.patch(f"{ADMIN}/webhook", json={}, headers=org.headers).status_code == 200
    assert history(application) == before


def test_a_webhook_configured_again_after_deletion_has_a_new_created_at(client, org, application):
    first = put_webhook(client, org, secret=SECRET, enabled=True)
    assert first.status_code == 201
    assert client.delete(f"{ADMIN}/webhook", headers=org.headers).status_code == 204
    time.sleep(0.05)

    again = put_webhook(client, org)
    assert again.status_code == 201
    created_at = datetime.fromisoformat(again.json["created_at"])
    assert created_at > datetime.fromisoformat(first.json["updated_at"])
    assert again.json["updated_at"] == again.json["created_at"]
    assert again.json["secret_set"] is False and again.json["enabled"] is False
    shown = client.get(f"{ADMIN}/webhook", headers=org.headers).json
    assert {name: shown[name] for name in again.json} == again.json

    # Later changes keep the new created_at.
    time.sleep(0.01)
    changed = client.patch(f"{ADMIN}/webhook", json={"enabled": True}, headers=org.headers)
    assert changed.json["created_at"] == again.json["created_at"]
    assert changed.json["updated_at"] > again.json["updated_at"]
    assert event_types(client, org, aggregate_id=application.get_webhook(org.id).id) == [
        "WebhookConfigured",
        "WebhookDeleted",
        "WebhookReplaced",
        "WebhookEnabled",
    ]


@pytest.mark.parametrize("secret", ["s3cr3t", "x", "s" * 256])
def test_any_secret_of_1_to_256_characters_is_taken(client, org, application, secret):
    created = put_webhook(client, org, secret=secret)
    assert created.status_code == 201, created.get_data(as_text=True)
    assert created.json["secret_set"] is True
    assert application.get_webhook(org.id).secret == secret
    other = secret.swapcase()
    changed = client.patch(f"{ADMIN}/webhook", json={"secret": other}, headers=org.headers)
    assert changed.status_code == 200, changed.get_data(as_text=True)
    assert application.get_webhook(org.id).secret == other


def test_an_unresolvable_host_is_accepted_at_configuration_time(client, org):
    response = put_webhook(client, org, url="https://hooks.tenzo-customer.invalid/webhook")
    assert response.status_code == 201


def test_each_organization_has_its_own_webhook(client, org, other_org, application):
    put_webhook(client, org)
    before = history(application)
    problem_of(client.get(f"{ADMIN}/webhook", headers=other_org.headers), 404)
    problem_of(
        client.patch(f"{ADMIN}/webhook", json={"enabled": True}, headers=other_org.headers), 404
    )
    problem_of(client.delete(f"{ADMIN}/webhook", headers=other_org.headers), 404)
    assert history(application) == before
    assert client.get(f"{ADMIN}/webhook", headers=org.headers).status_code == 200


def test_the_webhook_secret_is_encrypted_at_rest(client, org, settings, application):
    """The secret is nowhere in the database, the catalog's audit rows included (they
    redact it); the URL is not in the event store, whose events are encrypted (the
    audit rows show it, as the history does)."""
    put_webhook(client, org, secret=SECRET)
    application.catalog.wait_for_writes(org.id)  # the audit rows are written too
    assert SECRET.encode() not in stored_bytes(settings)
    events_table = application.recorder.events_table_name
    assert WEBHOOK_URL.encode() not in stored_bytes(settings, events_table)


def stored_bytes(settings: Any, table: str | None = None) -> bytes:
    """What the database holds: one table's rows, or everything (on SQLite the file
    itself and its journal, on PostgreSQL every table's rows)."""
    if settings.uses_sqlite and table is None:
        paths = [
            settings.sqlite_path.with_name(settings.sqlite_path.name + suffix)
            for suffix in ("", "-wal", "-journal")
        ]
        return b"".join(path.read_bytes() for path in paths if path.exists())
    if settings.uses_sqlite:
        import sqlite3

        with contextlib.closing(sqlite3.connect(settings.sqlite_path)) as connection:
            return repr(connection.execute(f"SELECT * FROM {table}").fetchall()).encode()
    import psycopg

    with psycopg.connect(settings.database_url) as connection:
        tables = (
            [table]
            if table
            else [
                name
                for (name,) in connection.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                )
            ]
        )
        return "\n".join(
            repr(connection.execute(f"SELECT * FROM {name}").fetchall()) for name in tables
        ).encode()


# -- webhook: bad input --------------------------------------------------------------

REFUSED_URLS = {
    "http": ("http://93.184.215.14/webhooks", "https"),
    "credentials": ("https://user:password@93.184.215.14/webhooks", "credentials"),
    "localhost": ("https://localhost/webhooks", "private"),
    "localhost-fqdn": ("https://localhost./webhooks", "private"),
    "rfc1918": ("https://10.0.0.1/webhooks", "private"),
    "ipv6-loopback": ("https://[::1]/webhooks", "private"),
    "metadata": ("https://169.254.169.254/latest/meta-data", "private"),
    "ipv4-mapped": ("https://[::ffff:127.0.0.1]/", "private"),
    "ipv4-translated": ("https://[::ffff:0:127.0.0.1]/", "private"),
    "ipv4-compatible": ("https://[::127.0.0.1]/", "private"),
    "nat64": ("https://[64:ff9b::7f00:1]/", "private"),
    "local-nat64": ("https://[64:ff9b:1::7f00:1]/", "private"),
    "6to4": ("https://[2002:7f00:1::]/", "private"),
    "percent-encoded": ("https://%31%32%37.0.0.1/", "percent-encoded"),
    "idna-invalid": ("https://xn--/webhooks", "not valid IDNA"),
    "idna-invalid-label": ("https://hooks.xn--zz.example.com/", "not valid IDNA"),
    # (NUL never gets here: the JSON reader refuses it, see test_request_bodies.py)
    "control-char": ("https://hooks.exa\x01mple.com/", "control characters"),
    "no-host": ("https:///webhooks", "host"),
    "relative": ("/webhooks", "https"),
    "too-long": ("https://93.184.215.14/" + "a" * 2048, "2048"),
}


@pytest.mark.parametrize("case", list(REFUSED_URLS))
def test_a_refused_url_is_422_on_put_and_patch_and_changes_nothing(client, org, application, case):
    url, reason = REFUSED_URLS[case]
    for method, body in (("put", {"url": url, "enabled": True}), ("patch", {"url": url})):
        if method == "patch":
            put_webhook(client, org)
        before = history(application)
        response = getattr(client, method)(f"{ADMIN}/webhook", json=body, headers=org.headers)
        problem = problem_of(response, 422)
        assert list(problem["errors"]) == ["url"]
        assert reason in " ".join(problem["errors"]["url"])
        assert history(application) == before


def test_a_hostname_that_resolves_to_loopback_is_refused(client, org, application):
    import socket

    assert "127.0.0.1" in {info[4][0] for info in socket.getaddrinfo("localhost", None)}
    before = history(application)
    problem = problem_of(
        client.put(
            f"{ADMIN}/webhook", json={"url": "https://LocalHost:8443/x"}, headers=org.headers
        ),
        422,
    )
    assert "private" in problem["errors"]["url"][0]
    assert history(application) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "url"),
        ({"enabled": True}, "url"),
        ({"url": WEBHOOK_URL, "events": ["*"]}, "events"),
        ({"url": 42}, "url"),
        ({"url": None}, "url"),
        ({"url": ""}, "url"),
        ({"url": WEBHOOK_URL, "enabled": "maybe"}, "enabled"),
        ({"url": WEBHOOK_URL, "enabled": [True]}, "enabled"),
        ({"url": WEBHOOK_URL, "secret": ""}, "secret"),
        ({"url": WEBHOOK_URL, "secret": "s" * 257}, "secret"),
        ({"url": WEBHOOK_URL, "secret": 12345678}, "secret"),
    ],
    ids=[
        "empty",
        "missing-url",
        "unknown-field",
        "url-number",
        "url-null",
        "url-empty",
        "enabled-string",
        "enabled-list",
        "secret-empty",
        "secret-too-long",
        "secret-number",
    ],
)
def test_bad_webhook_put_bodies_are_422(client, org, application, body, field):
    before = history(application)
    problem = problem_of(client.put(f"{ADMIN}/webhook", json=body, headers=org.headers), 422)
    assert field in problem["errors"]
    assert history(application) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"enabled": None}, "enabled"),
        ({"url": None}, "url"),
        ({"colour": "red"}, "colour"),
        ({"secret": ""}, "secret"),
        ({"enabled": "sometimes"}, "enabled"),
    ],
)
def test_bad_webhook_patch_bodies_are_422(client, org, application, body, field):
    put_webhook(client, org)
    before = history(application)
    problem = problem_of(client.patch(f"{ADMIN}/webhook", json=body, headers=org.headers), 422)
    assert field in problem["errors"]
    assert history(application) == before


NOT_JSON_BOOLEANS = ["yes", "true", "false", "on", "1", 1, 0, 1.0, {}]


@pytest.mark.parametrize("value", NOT_JSON_BOOLEANS, ids=[repr(v) for v in NOT_JSON_BOOLEANS])
@pytest.mark.parametrize("method", ["put", "patch"])
def test_enabled_takes_only_json_true_or_false(client, org, application, method, value):
    put_webhook(client, org)
    before = history(application)
    response = getattr(client, method)(
        f"{ADMIN}/webhook", json={"url": WEBHOOK_URL, "enabled": value}, headers=org.headers
    )
    problem = problem_of(response, 422)
    assert list(problem["errors"]) == ["enabled"]
    assert "true or false" in problem["errors"]["enabled"][0]
    assert history(application) == before
    assert client.get(f"{ADMIN}/webhook", headers=org.headers).json["enabled"] is False


def test_patch_on_a_webhook_that_does_not_exist_is_404(client, org, application):
    before = history(application)
    body = problem_of(
        client.patch(f"{ADMIN}/webhook", json={"enabled": True}, headers=org.headers), 404
    )
    assert "webhook" in body["detail"].lower()
    put_webhook(client, org)
    client.delete(f"{ADMIN}/webhook", headers=org.headers)
    after_delete = history(application)
    problem_of(client.patch(f"{ADMIN}/webhook", json={"enabled": True}, headers=org.headers), 404)
    assert history(application) == after_delete
    assert len(after_delete) == len(before) + 2


# -- event history -------------------------------------------------------------------


def test_the_event_history_pages_filters_and_never_shows_secrets(
    client, org, other_org, application
):
    first = create_key(client, org, "first")
    second = create_key(client, org, "second")
    client.post(f"{ADMIN}/api-keys/{first['id']}/revoke", headers=org.headers)
    put_webhook(client, org, secret=SECRET)
    client.patch(f"{ADMIN}/webhook", json={"secret": SECRET + "-2"}, headers=org.headers)
    theirs = create_key(client, other_org, "theirs")

    everything = events(client, org)
    items = everything["items"]
    assert everything["next_after"] is None
    assert [item["type"] for item in items] == [
        "OrganizationCreated",
        "AdminTokenIssued",
        "ApiKeyCreated",
        "ApiKeyCreated",
        "ApiKeyRevoked",
        "WebhookConfigured",
        "WebhookSecretChanged",
    ]
    positions = [item["position"] for item in items]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    for item in items:
        assert set(item) == {
            "position",
            "id",
            "type",
            "aggregate_type",
            "aggregate_id",
            "version",
            "previous_hash",
            "hash",
            "occurred_at",
            "actor",
            "data",
        }
        datetime.fromisoformat(item["occurred_at"])
    created = items[2]
    assert created["aggregate_type"] == "ApiKey" and created["aggregate_id"] == first["id"]
    assert created["version"] == 1
    assert created["data"]["name"] == "first"
    assert created["data"]["key_hash"] == "[redacted]"
    assert created["actor"]["type"] == "admin_token"
    assert items[5]["data"]["secret"] == "[redacted]"
    assert items[6]["data"]["secret"] == "[redacted]"

    # Paging forward with `after`.
    page1 = events(client, org, limit=3)
    assert [i["position"] for i in page1["items"]] == positions[:3]
    assert page1["next_after"] == positions[2]
    page2 = events(client, org, limit=3, after=page1["next_after"])
    assert [i["position"] for i in page2["items"]] == positions[3:6]
    page3 = events(client, org, limit=3, after=page2["next_after"])
    assert [i["position"] for i in page3["items"]] == positions[6:]
    assert page3["next_after"] is None

    # Filters.
    assert [i["aggregate_id"] for i in events(client, org, type="ApiKeyCreated")["items"]] == [
        first["id"],
        second["id"],
    ]
    assert event_types(client, org, aggregate_id=first["id"]) == ["ApiKeyCreated", "ApiKeyRevoked"]
    assert events(client, org, type="NoSuchEvent")["items"] == []
    # Another organization's aggregate is not visible through the filter either.
    assert events(client, org, aggregate_id=theirs["id"])["items"] == []
    assert theirs["id"] not in json.dumps(everything)
    assert [
        i["data"].get("name") for i in events(client, other_org, type="ApiKeyCreated")["items"]
    ] == ["theirs"]

    # No plaintext secret, key, token or hash anywhere in the raw body.
    raw = client.get(f"{ADMIN}/events", headers=org.headers).get_data(as_text=True)
    stored_hash = application.get_api_key(org.id, uuid.UUID(first["id"])).key_hash
    for secret in (SECRET, first["key"], second["key"], org.admin_token, stored_hash):
        assert secret not in raw
    assert first["key"][len(API_KEY_PREFIX) : -4] not in raw


@pytest.mark.parametrize(
    "query",
    [
        {"after": -1},
        {"after": "x"},
        {"limit": 0},
        {"limit": 1001},
        {"aggregate_id": "not-a-uuid"},
        {"type": "x" * 101},
        {"type": "Api\x00Key"},
        {"type": "ApiKey Created"},
        {"after": 2**63},
        {"after": 10**20},
    ],
)
def test_bad_event_queries_are_422(client, org, query):
    response = client.get(f"{ADMIN}/events", query_string=query, headers=org.headers)
    assert set(problem_of(response, 422)["errors"]) == set(query)


@pytest.mark.parametrize(
    "query",
    [
        {"after": -1},
        {"after": "abc"},
        {"after": 2**63},
        {"aggregate_id": "not-a-uuid"},
        {"type": "ApiKey Created"},
        {"type": "x" * 101},
    ],
)
def test_bad_export_queries_are_422_as_on_the_list(client, org, query):
    listed = client.get(f"{ADMIN}/events", query_string=query, headers=org.headers)
    exported = client.get(f"{ADMIN}/events/export", query_string=query, headers=org.headers)
    assert set(problem_of(exported, 422)["errors"]) == set(query)
    assert problem_of(exported, 422)["errors"] == problem_of(listed, 422)["errors"]


def test_the_export_streams_everything_after_a_position_without_a_limit(client, org, application):
    for number in range(520):  # more than the export reads at a time (500)
        application.create_api_key(org.id, f"key-{number}", None, OPERATOR)
    everything = events(client, org, limit=1000)["items"]
    assert len(everything) > 500

    def export(**query: Any) -> list[dict[str, Any]]:
        response = client.get(f"{ADMIN}/events/export", query_string=query, headers=org.headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        return [json.loads(line) for line in response.get_data(as_text=True).splitlines()]

    assert export() == everything
    middle = everything[5]["position"]
    assert export(after=middle) == [item for item in everything if item["position"] > middle]
    assert export(after=everything[-1]["position"]) == []
    assert export(after=2**63 - 1) == []
    key_created = [item for item in everything if item["type"] == "ApiKeyCreated"]
    assert export(after=middle, type="ApiKeyCreated") == [
        item for item in key_created if item["position"] > middle
    ]
    one = key_created[-1]
    assert export(after=middle, aggregate_id=one["aggregate_id"]) == [one]
    assert export(after=one["position"], aggregate_id=one["aggregate_id"]) == []


def test_the_export_is_ndjson_of_the_same_items(client, org, other_org):
    key = create_key(client, org)
    put_webhook(client, org, secret=SECRET)
    create_key(client, other_org, "theirs")
    response = client.get(f"{ADMIN}/events/export", headers=org.headers)
    assert response.status_code == 200
    assert response.mimetype == "application/x-ndjson"
    assert "attachment" in response.headers["Content-Disposition"]
    raw = response.get_data(as_text=True)
    assert raw.endswith("\n")
    exported = [json.loads(line) for line in raw.splitlines()]
    assert exported == events(client, org)["items"]
    for secret in (SECRET, key["key"], org.admin_token):
        assert secret not in raw

    filtered = client.get(
        f"{ADMIN}/events/export", query_string={"type": "ApiKeyCreated"}, headers=org.headers
    )
    lines = filtered.get_data(as_text=True).splitlines()
    assert [json.loads(line)["aggregate_id"] for line in lines] == [key["id"]]

    problem_of(client.get(f"{ADMIN}/events/export"), 401)


# -- problems for unknown routes, the API document, operations ----------------------


def test_unknown_paths_and_methods_get_problem_bodies(client, org):
    problem_of(client.get("/admin/v1/nothing-here", headers=org.headers), 404)
    problem_of(client.get("/no/such/page"), 404)
    response = client.delete(f"{ADMIN}/api-keys", headers=org.headers)
    problem_of(response, 405)
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


def test_the_openapi_document_is_valid_and_describes_the_admin_api(client):
    from openapi_spec_validator import validate

    response = client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json
    validate(document)
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    expected = {
        "/admin/v1/organizations": {"post"},
        "/admin/v1/api-keys": {"get", "post"},
        "/admin/v1/api-keys/{key_id}": {"get"},
        "/admin/v1/api-keys/{key_id}/revoke": {"post"},
        "/admin/v1/webhook": {"get", "put", "patch", "delete"},
        "/admin/v1/events": {"get"},
        "/admin/v1/events/export": {"get"},
    }
    for path, methods in expected.items():
        assert methods <= set(paths[path]), path
    schemas = document["components"]["schemas"]
    create = next(
        s
        for name, s in schemas.items()
        if name.startswith("ApiKeyCreate") and "key" not in s["properties"]
    )
    assert create["properties"]["name"]["maxLength"] == 100
    assert "bearerAuth" in document["components"]["securitySchemes"]
    put = paths["/admin/v1/webhook"]["put"]["responses"]
    assert {"200", "201"} <= set(put)


def test_the_docs_page_works_offline(client):
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "swagger" in html.lower()
    assert "/openapi.json" in html
    assert "cdn" not in html.lower()
    import re

    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets
    for asset in assets:
        assert asset.startswith("/docs/assets/"), asset
        served = client.get(asset)
        assert served.status_code == 200, asset
        assert len(served.get_data()) > 1000


def test_health_readiness_and_metrics(client, org):
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json == {"status": "ready", "checks": {"event_store": "ok", "broker": "ok"}}
    client.get(f"{ADMIN}/api-keys", headers=org.headers)
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.mimetype == "text/plain"
    text = metrics.get_data(as_text=True)
    assert 'tenzo_http_requests_total{method="GET",route="/admin/v1/api-keys",status="200"}' in text


# -- concurrent changes --------------------------------------------------------------


def test_a_change_that_lost_a_race_is_409_and_changes_nothing(client, org, application):
    """Another request changes the webhook while this one resolves its new host name."""
    from domain.actors import SYSTEM
    from domain.webhook_urls import WebhookUrlPolicy

    put_webhook(client, org)

    def resolve_while_another_request_lands(host: str) -> list[str]:
        application.change_webhook(org.id, SYSTEM, enabled=True)
        return ["93.184.215.14"]

    application.url_policy = WebhookUrlPolicy(resolve=resolve_while_another_request_lands)
    before = history(application)
    response = client.patch(
        f"{ADMIN}/webhook", json={"url": "https://race.example.com/hook"}, headers=org.headers
    )
    assert "retry" in problem_of(response, 409)["detail"].lower()
    assert len(history(application)) == len(before) + 1  # only the other request's change
    webhook = client.get(f"{ADMIN}/webhook", headers=org.headers).json
    assert webhook["url"] == WEBHOOK_URL and webhook["enabled"] is True


def test_revoking_concurrently_is_200_for_both_and_records_one_event(client, org, application):
    """Another request revokes the key between this request's read and its write."""
    from domain.actors import SYSTEM

    key_id = create_key(client, org)["id"]
    real_clock = application.clock
    raced = []

    def clock_while_another_request_lands():
        if not raced:
            raced.append(True)
            application.revoke_api_key(org.id, uuid.UUID(key_id), SYSTEM)
        return real_clock()

    application.clock = clock_while_another_request_lands
    response = client.post(f"{ADMIN}/api-keys/{key_id}/revoke", headers=org.headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["status"] == "revoked"
    revoked = events(client, org, type="ApiKeyRevoked")["items"]
    assert [item["actor"]["type"] for item in revoked] == ["system"]
