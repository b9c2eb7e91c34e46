"""Public API (SPEC 5.3) through the Flask test client, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from prometheus_client import REGISTRY

from domain.credentials import API_KEY_PREFIX, mint
from services.api.app import create_app
from services.bootstrap import build_api
from services.settings import Settings
from tests.conftest import history
from tests.support.problems import PROBLEM, problem_of

JOB = {"title": "Backend engineer", "location": "Berlin", "employment_type": "full-time"}


def create_key(client, org, **body) -> dict:
    response = client.post("/admin/v1/api-keys", json={"name": "ats"} | body, headers=org.headers)
    assert response.status_code == 201, response.json
    return response.json


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def key(client, org) -> dict:
    return create_key(client, org)


@pytest.fixture
def auth(key) -> dict[str, str]:
    return bearer(key["key"])


@pytest.fixture
def job(client, auth) -> dict:
    response = client.post("/v1/jobs", json=JOB | {"external_id": "job-1"}, headers=auth)
    assert response.status_code == 201
    return response.json


def candidate_body(job_id: str, **changes) -> dict:
    body = {"job_id": job_id, "first_name": "Ada", "last_name": "Lovelace"}
    return body | {"email": "ada@example.com"} | changes


def usage_of(client, org, key_id: str, expected: int, within: float = 2.0) -> dict:
    """The key as the admin API shows it, once its usage_count is ``expected``."""
    deadline = time.monotonic() + within
    while True:
        shown = client.get(f"/admin/v1/api-keys/{key_id}", headers=org.headers).json
        if shown["usage_count"] == expected or time.monotonic() > deadline:
            return shown
        time.sleep(0.05)


# -- jobs and candidates ------------------------------------------------------------


def test_push_a_job_then_update_it_by_external_id(client, key, auth, org, application):
    created = client.post("/v1/jobs", json=JOB | {"external_id": "j-7"}, headers=auth)
    assert created.status_code == 201
    job = created.json
    assert job["title"] == "Backend engineer" and job["status"] == "open"
    assert job["external_id"] == "j-7"

    updated = client.post(
        "/v1/jobs",
        json={"external_id": "j-7", "title": "Staff engineer", "status": "closed"},
        headers=auth,
    )
    assert updated.status_code == 200
    assert updated.json["id"] == job["id"]
    assert updated.json["title"] == "Staff engineer"
    assert updated.json["status"] == "closed"
    assert updated.json["location"] == "Berlin"  # not given: kept

    shown = client.get(f"/v1/jobs/{job['id']}", headers=auth)
    assert shown.status_code == 200 and shown.json == updated.json

    events = application.event_history(org.id, aggregate_id=job["id"])
    assert [item["type"] for item in events] == ["JobCreated", "JobUpdated"]
    assert {item["actor"]["id"] for item in events} == {key["id"]}
    assert events[0]["actor"]["type"] == "api_key"


def test_posting_the_same_job_again_changes_nothing(client, auth, application):
    client.post("/v1/jobs", json=JOB | {"external_id": "same"}, headers=auth)
    before = history(application)
    again = client.post("/v1/jobs", json=JOB | {"external_id": "same"}, headers=auth)
    assert again.status_code == 200
    assert history(application) == before


def test_push_candidates_and_list_them_by_job(client, auth, job):
    other_job = client.post("/v1/jobs", json={"title": "Designer"}, headers=auth).json
    ada = client.post(
        "/v1/candidates", json=candidate_body(job["id"], external_id="c-1"), headers=auth
    )
    assert ada.status_code == 201
    grace = client.post(
        "/v1/candidates",
        json=candidate_body(job["id"], first_name="Grace", last_name="Hopper", phone="+1 555"),
        headers=auth,
    )
    assert grace.status_code == 201
    client.post(
        "/v1/candidates", json=candidate_body(other_job["id"], email="x@example.com"), headers=auth
    )

    moved = client.post(
        "/v1/candidates",
        json=candidate_body(job["id"], external_id="c-1", email="ada@lovelace.dev"),
        headers=auth,
    )
    assert moved.status_code == 200 and moved.json["id"] == ada.json["id"]
    assert moved.json["email"] == "ada@lovelace.dev"

    listed = client.get(f"/v1/candidates?job_id={job['id']}", headers=auth)
    assert listed.status_code == 200
    assert [c["id"] for c in listed.json["items"]] == [grace.json["id"], ada.json["id"]]
    assert listed.json["next_cursor"] is None
    everyone = client.get("/v1/candidates", headers=auth).json["items"]
    assert len(everyone) == 3
    shown = client.get(f"/v1/candidates/{grace.json['id']}", headers=auth)
    assert shown.status_code == 200 and shown.json["phone"] == "+1 555"


def test_a_candidate_moved_to_another_job_is_listed_under_it(client, auth, job):
    other_job = client.post("/v1/jobs", json={"title": "Designer"}, headers=auth).json
    client.post("/v1/candidates", json=candidate_body(job["id"], external_id="c"), headers=auth)
    client.post(
        "/v1/candidates", json=candidate_body(other_job["id"], external_id="c"), headers=auth
    )
    by_job = client.get(f"/v1/candidates?job_id={other_job['id']}", headers=auth).json["items"]
    assert [c["external_id"] for c in by_job] == ["c"]
    assert client.get(f"/v1/candidates?job_id={job['id']}", headers=auth).json["items"] == []


def test_pages_are_newest_first_and_stable_under_concurrent_inserts(client, auth):
    ids = [
        client.post("/v1/jobs", json={"title": f"Job {n}"}, headers=auth).json["id"]
        for n in range(5)
    ]
    first = client.get("/v1/jobs?limit=2", headers=auth).json
    assert [j["id"] for j in first["items"]] == [ids[4], ids[3]]
    client.post("/v1/jobs", json={"title": "Inserted while paging"}, headers=auth)
    seen = [j["id"] for j in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        page = client.get(f"/v1/jobs?limit=2&cursor={cursor}", headers=auth).json
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
    assert seen == list(reversed(ids))


def test_concurrent_pushes_of_one_external_id_create_one_job(flask_app, auth, org, application):
    def push(n: int):
        client = flask_app.test_client()
        body = {"external_id": "race", "title": f"Title {n % 2}"}
        return client.post("/v1/jobs", json=body, headers=auth)

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(push, range(16)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 15 + [201]
    assert len({r.json["id"] for r in responses}) == 1
    assert len(application.event_history(org.id, type="JobCreated")) == 1


# -- authentication -----------------------------------------------------------------


def _broken_checksum(key: str) -> str:
    last = key[-1]
    return key[:-1] + ("A" if last != "A" else "B")


AUTH_FAILURES = {
    "no header": (lambda key, org: {}, "No Authorization header"),
    "Bearer with nothing": (lambda key, org: {"Authorization": "Bearer"}, "carries no credential"),
    "Bearer and a space": (lambda key, org: {"Authorization": "Bearer "}, "carries no credential"),
    "Basic": (
        lambda key, org: {"Authorization": "Basic dXNlcjpwYXNz"},
        "does not use the Bearer scheme",
    ),
    "key without Bearer": (
        lambda key, org: {"Authorization": key["key"]},
        "lacks the Bearer scheme",
    ),
    "key in X-API-Key": (lambda key, org: {"X-API-Key": key["key"]}, "in the X-API-Key header"),
    "admin token": (lambda key, org: org.headers, "That is an admin token (tenzo_admin_…)"),
    "not ours": (lambda key, org: bearer("sk_live_" + "a" * 30), "not a Tenzo API key"),
    "truncated": (lambda key, org: bearer(key["key"][:-3]), "is truncated"),
    "broken checksum": (lambda key, org: bearer(_broken_checksum(key["key"])), "checksum"),
    "never existed": (
        lambda key, org: bearer(mint(API_KEY_PREFIX).plaintext),
        "This API key is not known here",
    ),
}


@pytest.mark.parametrize("case", list(AUTH_FAILURES))
def test_every_bad_credential_gets_a_401_saying_which_and_changes_nothing(
    client, org, key, application, case
):
    make, expected = AUTH_FAILURES[case]
    headers = make(key, org)
    before = history(application)
    response = client.post("/v1/jobs", json=JOB, headers=headers)
    body = problem_of(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert body["type"] == "/problems/unauthorized"
    assert expected in body["detail"], body["detail"]
    assert key["key"] not in response.get_data(as_text=True)
    assert org.admin_token not in response.get_data(as_text=True)
    assert problem_of(client.get("/v1/jobs", headers=headers), 401) == body
    assert history(application) == before


def test_an_unknown_key_is_indistinguishable_from_any_other(client, key, application):
    """No oracle: every well-formed key that is not stored gets the very same answer,
    and what is wrong with a malformed one is told without a look-up."""
    unknown = [mint(API_KEY_PREFIX).plaintext for _ in range(3)]
    bodies = {client.get("/v1/jobs", headers=bearer(k)).get_data() for k in unknown}
    assert len(bodies) == 1
    for k in unknown:
        assert k[-4:] not in bodies.copy().pop().decode()

    def without_hint(presented: str) -> str:
        detail = problem_of(client.get("/v1/jobs", headers=bearer(presented)), 401)["detail"]
        return detail.replace(presented[-4:], "…")

    real, other = key["key"], unknown[0]
    assert without_hint(_broken_checksum(real)) == without_hint(_broken_checksum(other))
    assert without_hint(real[:-2]) == without_hint(other[:-2])


def test_a_revoked_key_is_refused_on_the_next_request_and_says_so(
    client, org, key, auth, application, caplog
):
    caplog.set_level(logging.DEBUG)
    assert client.get("/v1/jobs", headers=auth).status_code == 200
    revoked = client.post(f"/admin/v1/api-keys/{key['id']}/revoke", headers=org.headers).json
    before = history(application)
    response = client.post("/v1/jobs", json=JOB, headers=auth)
    detail = problem_of(response, 401)["detail"]
    revoked_at = datetime.fromisoformat(revoked["revoked_at"]).isoformat().replace("+00:00", "Z")
    assert detail.startswith(f"The API key {key['key_hint']} was revoked at {revoked_at}")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert history(application) == before
    assert key["key"] not in caplog.text
    assert key["key_hint"] in caplog.text and "(revoked)" in caplog.text


def test_an_expired_key_is_refused_saying_when(client, org, application):
    expires_at = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    key = create_key(client, org, expires_at=expires_at.isoformat())
    assert client.get("/v1/jobs", headers=bearer(key["key"])).status_code == 200
    application.clock = lambda: datetime.now(UTC) + timedelta(hours=1, seconds=1)
    before = history(application)
    response = client.post("/v1/jobs", json=JOB, headers=bearer(key["key"]))
    detail = problem_of(response, 401)["detail"]
    when = expires_at.isoformat().replace("+00:00", "Z")
    assert detail.startswith(f"The API key {key['key_hint']} expired at {when}")
    assert history(application) == before


def in_query_refusals() -> float:
    labels = {"reason": "in_query"}
    return REGISTRY.get_sample_value("tenzo_api_key_refusals_total", labels) or 0.0


def test_a_key_in_the_query_string_is_refused_and_never_logged(
    client, auth, key, application, caplog
):
    caplog.set_level(logging.DEBUG)
    before = history(application)
    refusals_before = in_query_refusals()
    for url in (f"/v1/jobs?api_key={key['key']}", f"/v1/jobs?limit=5&token={key['key']}"):
        for headers in ({}, auth):
            response = client.get(url, headers=headers)
            assert "in the query string" in problem_of(response, 401)["detail"]
            response = client.post(url, json=JOB, headers=headers)
            assert response.status_code == 401
            assert key["key"][-8:] not in response.get_data(as_text=True)
    assert history(application) == before
    assert in_query_refusals() == refusals_before + 8
    assert key["key"] not in caplog.text
    assert key["key"][-8:] not in caplog.text


def test_an_api_key_is_refused_on_the_admin_api(client, auth, application):
    before = history(application)
    for method, path in (("get", "/admin/v1/api-keys"), ("post", "/admin/v1/api-keys")):
        response = getattr(client, method)(path, json={"name": "x"}, headers=auth)
        detail = problem_of(response, 401)["detail"]
        assert detail.startswith("That is an API key (tenzo_pk_…)")
        assert "admin token (tenzo_admin_…)" in detail
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert history(application) == before


def test_another_organizations_job_is_not_found(client, auth, other_org, job):
    other_key = create_key(client, other_org)
    response = client.get(f"/v1/jobs/{job['id']}", headers=bearer(other_key["key"]))
    problem_of(response, 404)
    listed = client.get(f"/v1/candidates?job_id={job['id']}", headers=bearer(other_key["key"]))
    problem_of(listed, 404)
    assert client.get(f"/v1/jobs/{uuid4()}", headers=auth).status_code == 404


# -- bad input ------------------------------------------------------------------------

LONG = "x" * 10_000

BAD_JOBS = {
    "unknown field": ({**JOB, "salary": 100}, "salary"),
    "missing title": ({"location": "Berlin"}, "title"),
    "blank title": ({"title": "   "}, "title"),
    "10,000-char title": ({"title": LONG}, "title"),
    "10,001-char description": ({"title": "t", "description": LONG + "x"}, "description"),
    "10,000-char location": ({"title": "t", "location": LONG}, "location"),
    "long employment_type": ({"title": "t", "employment_type": "x" * 51}, "employment_type"),
    "unknown status": ({"title": "t", "status": "paused"}, "status"),
    "title not a string": ({"title": 7}, "title"),
    "10,000-char external_id": ({"title": "t", "external_id": LONG}, "external_id"),
}


@pytest.mark.parametrize("case", list(BAD_JOBS))
def test_a_bad_job_is_refused_with_422_and_changes_nothing(client, auth, application, case):
    body, field = BAD_JOBS[case]
    before = history(application)
    response = client.post("/v1/jobs", json=body, headers=auth)
    assert field in problem_of(response, 422)["errors"]
    assert history(application) == before


def test_a_long_description_within_the_bound_is_accepted(client, auth):
    response = client.post("/v1/jobs", json={"title": "t", "description": LONG}, headers=auth)
    assert response.status_code == 201
    assert len(response.json["description"]) == 10_000


BAD_CANDIDATES = {
    "unknown field": (lambda job: candidate_body(job, age=30), "age"),
    "missing email": (lambda job: {"job_id": job, "first_name": "A", "last_name": "B"}, "email"),
    "invalid email": (lambda job: candidate_body(job, email="not-an-email"), "email"),
    "missing job_id": (
        lambda job: {"first_name": "A", "last_name": "B", "email": "a@example.com"},
        "job_id",
    ),
    "job_id not a uuid": (lambda job: candidate_body("job-1"), "job_id"),
    "job_id of no job": (lambda job: candidate_body(str(uuid4())), "job_id"),
    "10,000-char first_name": (lambda job: candidate_body(job, first_name=LONG), "first_name"),
    "10,000-char last_name": (lambda job: candidate_body(job, last_name=LONG), "last_name"),
    "10,000-char email": (lambda job: candidate_body(job, email=LONG + "@example.com"), "email"),
    "10,000-char phone": (lambda job: candidate_body(job, phone="1" * 10_000), "phone"),
    "resume_url not http(s)": (
        lambda job: candidate_body(job, resume_url="javascript:alert(1)"),
        "resume_url",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CANDIDATES))
def test_a_bad_candidate_is_refused_with_422_and_changes_nothing(
    client, auth, job, application, case
):
    make, field = BAD_CANDIDATES[case]
    before = history(application)
    response = client.post("/v1/candidates", json=make(job["id"]), headers=auth)
    assert field in problem_of(response, 422)["errors"]
    assert history(application) == before


def test_a_candidate_for_another_organizations_job_is_refused(client, other_org, job, application):
    other_auth = bearer(create_key(client, other_org)["key"])
    before = history(application)
    response = client.post("/v1/candidates", json=candidate_body(job["id"]), headers=other_auth)
    assert "job_id" in problem_of(response, 422)["errors"]
    assert history(application) == before


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=x", "cursor=bm9wZQ"])
def test_bad_paging_parameters_are_422(client, auth, query):
    problem_of(client.get(f"/v1/jobs?{query}", headers=auth), 422)


def test_a_body_that_is_not_json_is_refused(client, auth, application):
    before = history(application)
    response = client.post("/v1/jobs", data="title=x", headers=auth)
    assert response.status_code in (400, 415)
    assert response.mimetype == PROBLEM
    assert history(application) == before


# -- idempotency ----------------------------------------------------------------------


def test_the_same_idempotency_key_and_body_replay_the_first_response(client, auth, application):
    headers = auth | {"Idempotency-Key": "order-42"}
    first = client.post("/v1/jobs", json=JOB, headers=headers)
    assert first.status_code == 201
    after_first = history(application)
    again = client.post("/v1/jobs", json=dict(reversed(JOB.items())), headers=headers)
    assert again.status_code == 201
    assert again.json == first.json
    assert again.headers["Idempotent-Replayed"] == "true"
    assert history(application) == after_first


def test_the_same_idempotency_key_with_another_body_is_422(client, auth, application):
    headers = auth | {"Idempotency-Key": "order-43"}
    assert client.post("/v1/jobs", json=JOB, headers=headers).status_code == 201
    before = history(application)
    response = client.post("/v1/jobs", json=JOB | {"title": "Other"}, headers=headers)
    assert "Idempotency-Key" in problem_of(response, 422)["errors"]
    elsewhere = client.post("/v1/candidates", json=JOB, headers=headers)
    problem_of(elsewhere, 422)
    assert history(application) == before


def test_idempotency_keys_are_per_organization(client, auth, other_org):
    other_auth = bearer(create_key(client, other_org)["key"])
    mine = client.post("/v1/jobs", json=JOB, headers=auth | {"Idempotency-Key": "k"})
    theirs = client.post("/v1/jobs", json=JOB, headers=other_auth | {"Idempotency-Key": "k"})
    assert mine.status_code == theirs.status_code == 201
    assert mine.json["id"] != theirs.json["id"]


def test_a_failed_request_does_not_use_up_its_idempotency_key(client, auth):
    headers = auth | {"Idempotency-Key": "retry-me"}
    assert client.post("/v1/jobs", json={"title": ""}, headers=headers).status_code == 422
    assert client.post("/v1/jobs", json=JOB, headers=headers).status_code == 201


def test_a_bad_idempotency_key_is_422(client, auth, application):
    before = history(application)
    response = client.post("/v1/jobs", json=JOB, headers=auth | {"Idempotency-Key": "k" * 256})
    assert "Idempotency-Key" in problem_of(response, 422)["errors"]
    assert history(application) == before


def test_concurrent_requests_with_one_idempotency_key_execute_once(
    flask_app, auth, org, application
):
    headers = auth | {"Idempotency-Key": "concurrent"}
    start = threading.Barrier(6)

    def push(_):
        client = flask_app.test_client()
        start.wait()
        return client.post("/v1/jobs", json=JOB, headers=headers)

    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(push, range(6)))
    assert {r.status_code for r in responses} == {201}
    assert len({r.json["id"] for r in responses}) == 1
    assert len(application.event_history(org.id, type="JobCreated")) == 1


# -- usage and rate limit -----------------------------------------------------------


def test_usage_is_exact_after_concurrent_requests(flask_app, client, org, key, auth, job):
    threads, per_thread = 8, 25

    def call(_):
        session = flask_app.test_client()
        return [
            session.get(f"/v1/jobs/{job['id']}", headers=auth).status_code
            for _ in range(per_thread)
        ]

    with ThreadPoolExecutor(threads) as pool:
        codes = [code for batch in pool.map(call, range(threads)) for code in batch]
    assert codes.count(200) == threads * per_thread
    expected = threads * per_thread + 1  # and the POST that created the job
    shown = usage_of(client, org, key["id"], expected)
    assert shown["usage_count"] == expected
    last_used = datetime.fromisoformat(shown["last_used_at"])
    assert datetime.now(UTC) - last_used < timedelta(seconds=5)


def test_refused_requests_do_not_count(client, org, key, auth):
    client.get("/v1/jobs", headers=auth)
    client.get("/v1/jobs", headers=bearer(_broken_checksum(key["key"])))
    client.get("/v1/jobs", headers=org.headers)
    assert usage_of(client, org, key["id"], 1)["usage_count"] == 1


def test_over_the_rate_limit_is_429_with_retry_after(settings_env, application, org):
    limited = Settings.from_env(
        settings_env | {"TENZO_RATE_LIMIT_PER_SECOND": "0.5", "TENZO_RATE_LIMIT_BURST": "3"}
    )
    client = create_app(build_api(limited, application)).test_client()
    key = create_key(client, org)
    other = create_key(client, org)
    codes = [client.get("/v1/jobs", headers=bearer(key["key"])).status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    before = history(application)
    response = client.post("/v1/jobs", json=JOB, headers=bearer(key["key"]))
    problem_of(response, 429)
    assert 1 <= int(response.headers["Retry-After"]) <= 2
    assert history(application) == before
    # the limit is per key
    assert client.get("/v1/jobs", headers=bearer(other["key"])).status_code == 200


def test_a_key_revoked_by_another_process_is_refused_on_the_next_request(
    client, org, key, auth, settings
):
    from services.bootstrap import build_application

    assert client.get("/v1/jobs", headers=auth).status_code == 200  # key decoded and kept
    elsewhere = build_application(settings)  # another API process on the same store
    try:
        elsewhere.revoke_api_key(org.id, UUID(key["id"]), org_actor(elsewhere, org))
    finally:
        elsewhere.close()
    assert client.get("/v1/jobs", headers=auth).status_code == 401


def org_actor(application, org):
    return application.authenticate_admin(org.admin_token)[1]
