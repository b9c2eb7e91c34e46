"""SPEC 13: an ``expires_at`` without a time means the end of that day in UTC, in the
admin API and the dashboard alike."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from tests.conftest import history
from tests.integration.test_dashboard import Page
from tests.support.problems import problem_of


def _create(client, org, expires_at) -> dict:
    body = {"name": "nightly", "expires_at": expires_at}
    return client.post("/admin/v1/api-keys", json=body, headers=org.headers)


def test_a_date_means_the_first_moment_after_that_day(client, org):
    created = _create(client, org, "2099-01-31")
    assert created.status_code == 201, created.json
    assert datetime.fromisoformat(created.json["expires_at"]) == datetime(2099, 2, 1, tzinfo=UTC)
    shown = client.get(f"/admin/v1/api-keys/{created.json['id']}", headers=org.headers).json
    assert shown["expires_at"] == created.json["expires_at"]


def test_a_key_expiring_today_works_until_midnight_utc(client, org, application):
    today = datetime.now(UTC).date()
    key = _create(client, org, today.isoformat()).json
    bearer = {"Authorization": f"Bearer {key['key']}"}
    assert client.get("/v1/jobs", headers=bearer).status_code == 200

    midnight = datetime.combine(today + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    application.clock = lambda: midnight - timedelta(microseconds=1)
    assert client.get("/v1/jobs", headers=bearer).status_code == 200
    application.clock = lambda: midnight
    assert client.get("/v1/jobs", headers=bearer).status_code == 401


def test_a_date_with_a_time_keeps_its_time(client, org):
    created = _create(client, org, "2099-01-31T00:00:00Z").json
    assert datetime.fromisoformat(created["expires_at"]) == datetime(2099, 1, 31, tzinfo=UTC)


@pytest.mark.parametrize("value", ["yesterday", "2099-02-30", "2099-1-31", "31/01/2099"])
def test_a_past_or_invalid_date_is_422_and_changes_nothing(client, org, application, value):
    if value == "yesterday":
        value = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    before = history(application)
    assert "expires_at" in problem_of(_create(client, org, value), 422)["errors"]
    assert history(application) == before


def test_the_dashboard_and_the_api_agree(client, org, application):
    day = date(2099, 12, 31)
    page = Page(client)
    page.sign_in(org.admin_token)
    page.get("/api-keys")
    posted = page.post("/api-keys", {"name": "from the page", "expires_on": day.isoformat()})
    assert posted.status_code == 302
    through_api = _create(client, org, day.isoformat()).json
    listed = client.get("/admin/v1/api-keys", headers=org.headers).json["items"]
    from_page = next(item for item in listed if item["name"] == "from the page")
    assert from_page["expires_at"] == through_api["expires_at"]
    assert datetime.fromisoformat(from_page["expires_at"]) == datetime(2100, 1, 1, tzinfo=UTC)
