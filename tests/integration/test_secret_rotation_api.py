"""POST /admin/v1/webhook/secret/rotate (SPEC 9) through Flask's test client, on SQLite
and PostgreSQL: the answer, the events, the secret kept only as the overlap lasts, and
bad input refused with a problem that changes nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from domain.actors import DISPATCHER, OPERATOR
from services.dispatcher.projection import DispatchProjection
from services.infrastructure.storage import SqlTables
from tests.conftest import history
from tests.support.problems import problem_of

ADMIN = "/admin/v1"
ROTATE = f"{ADMIN}/webhook/secret/rotate"
WEBHOOK_URL = "https://93.184.215.14/webhooks/tenzo"
SECRET = "whsec-correct-horse-battery"


def put_webhook(client, org, **body):
    response = client.put(
        f"{ADMIN}/webhook", json={"url": WEBHOOK_URL, **body}, headers=org.headers
    )
    assert response.status_code == 201, response.get_data(as_text=True)


def types(client, org):
    response = client.get(f"{ADMIN}/events", query_string={"limit": 1000}, headers=org.headers)
    return [item["type"] for item in response.json["items"]]


def test_rotating_generates_a_secret_shown_once_and_keeps_the_old_one_a_day(
    client, org, application
):
    put_webhook(client, org, secret=SECRET)

    response = client.post(ROTATE, json={}, headers=org.headers)

    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.json
    assert set(body) == {"secret_set", "previous_secret_expires_at", "secret"}
    assert body["secret_set"] is True and body["secret"].startswith("whsec_")
    expires = datetime.fromisoformat(body["previous_secret_expires_at"])
    assert timedelta(hours=23, minutes=59) < expires - application.clock() <= timedelta(hours=24)
    assert application.get_webhook(org.id).secret == body["secret"]
    shown = client.get(f"{ADMIN}/webhook", headers=org.headers).json
    assert shown["previous_secret_expires_at"] == body["previous_secret_expires_at"]
    assert "secret" not in shown
    assert types(client, org)[-1] == "WebhookSecretRotated"
    # The history never shows a secret.
    everything = client.get(f"{ADMIN}/events", headers=org.headers).get_data(as_text=True)
    assert body["secret"] not in everything and SECRET not in everything
    rotated = json.loads(everything)["items"][-1]["data"]
    assert rotated["secret"] == "[redacted]"
    assert rotated["previous_secret_expires_at"] is not None


def test_a_given_secret_is_not_echoed_and_the_overlap_is_chosen(client, org, application):
    put_webhook(client, org, secret=SECRET)

    response = client.post(
        ROTATE,
        json={"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "overlap_hours": 2},
        headers=org.headers,
    )

    assert response.status_code == 200
    assert "secret" not in response.json
    expires = datetime.fromisoformat(response.json["previous_secret_expires_at"])
    assert timedelta(hours=1, minutes=59) < expires - application.clock() <= timedelta(hours=2)
    webhook = application.get_webhook(org.id)
    assert (webhook.secret, webhook.previous_secret) == (
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        SECRET,
    )


def test_an_overlap_of_zero_switches_at_once(client, org, application):
    put_webhook(client, org, secret=SECRET)

    response = client.post(ROTATE, json={"overlap_hours": 0}, headers=org.headers)

    assert response.status_code == 200
    assert application.get_webhook(org.id).previous_secret is None
    shown = client.get(f"{ADMIN}/webhook", headers=org.headers).json
    assert "previous_secret_expires_at" not in shown  # only during an overlap


def test_rotating_without_a_secret_set_has_no_previous_one(client, org):
    put_webhook(client, org)

    response = client.post(ROTATE, json={"secret": "first-secret"}, headers=org.headers)

    assert response.status_code == 200
    assert response.json == {"secret_set": True, "previous_secret_expires_at": None}


def test_rotating_without_a_webhook_is_404(client, org, application):
    before = history(application)

    problem = problem_of(client.post(ROTATE, json={}, headers=org.headers), 404)

    assert "webhook" in problem["detail"].lower()
    assert history(application) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"secret": ""}, "secret"),
        ({"secret": "s" * 257}, "secret"),
        ({"secret": 42}, "secret"),
        ({"secret": None}, "secret"),
        ({"secret": SECRET}, "secret"),  # the current one
        ({"overlap_hours": -1}, "overlap_hours"),
        ({"overlap_hours": 169}, "overlap_hours"),
        ({"overlap_hours": "24"}, "overlap_hours"),
        ({"overlap_hours": 1.5}, "overlap_hours"),
        ({"overlap": 24}, "overlap"),
    ],
)
def test_bad_rotation_bodies_are_422_and_change_nothing(client, org, application, body, field):
    put_webhook(client, org, secret=SECRET)
    before = history(application)

    problem = problem_of(client.post(ROTATE, json=body, headers=org.headers), 422)

    assert field in problem["errors"]
    assert history(application) == before
    assert application.get_webhook(org.id).secret == SECRET


# -- the dispatcher's projection keeps the previous secret encrypted, as long as needed ----

TABLE_BEFORE_ROTATION = """CREATE TABLE tenzo_dispatch_webhooks (
    webhook_id TEXT PRIMARY KEY, org_id TEXT NOT NULL, version BIGINT NOT NULL,
    url TEXT NOT NULL, enabled INTEGER NOT NULL, secret TEXT)"""


def test_the_projection_keeps_the_previous_secret_encrypted_until_it_is_forgotten(application, org):
    tables = SqlTables(application)
    with tables.transaction() as cursor:  # a table made by the version before rotation
        cursor.execute("DROP TABLE IF EXISTS tenzo_dispatch_webhooks")
        cursor.execute(TABLE_BEFORE_ROTATION)
    application.configure_webhook(org.id, WEBHOOK_URL, SECRET, True, OPERATOR)
    DispatchProjection(application)
    projection = DispatchProjection(application)  # twice, as processes starting together
    assert projection.webhook(org.id).previous_secret is None

    _, _, expires_at = application.rotate_webhook_secret(org.id, OPERATOR, secret="next one")

    target = projection.webhook(org.id)
    assert target.secret == "next one"
    assert target.previous_secret_at(application.clock()) == SECRET
    assert target.previous_secret_at(expires_at) is None  # signing stops at the expiry
    stored = tables.read("SELECT secret, previous_secret FROM tenzo_dispatch_webhooks")
    assert SECRET not in str(stored) and "next one" not in str(stored)  # encrypted
    assert projection.organizations_with_expired_previous_secrets(application.clock()) == []
    assert projection.organizations_with_expired_previous_secrets(expires_at) == [org.id]

    application.clock = lambda: datetime.now(UTC) + timedelta(hours=24, seconds=1)
    assert application.forget_expired_previous_secret(org.id, DISPATCHER)

    target = projection.webhook(org.id)
    assert (target.secret, target.previous_secret) == ("next one", None)
    [row] = tables.read(
        "SELECT previous_secret, previous_secret_expires_at FROM tenzo_dispatch_webhooks"
    )
    assert (row["previous_secret"], row["previous_secret_expires_at"]) == (None, None)
    assert types_of(application, org)[-1] == "WebhookPreviousSecretForgotten"


def types_of(application, org):
    return [item["type"] for item in application.event_history(org.id)]
