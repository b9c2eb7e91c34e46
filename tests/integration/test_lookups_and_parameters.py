"""SPEC 13: records found by the ATS's own id, and query parameters no route ignores."""

from __future__ import annotations

import re
from uuid import uuid4

import pytest

from tests.conftest import history
from tests.support.problems import problem_of


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def auth(client, org) -> dict[str, str]:
    response = client.post("/admin/v1/api-keys", json={"name": "ats"}, headers=org.headers)
    assert response.status_code == 201, response.json
    return _bearer(response.json["key"])


def _push(client, auth, path: str, body: dict) -> dict:
    response = client.post(path, json=body, headers=auth)
    assert response.status_code in (200, 201), response.json
    return response.json


@pytest.fixture
def jobs(client, auth) -> list[dict]:
    return [
        _push(client, auth, "/v1/jobs", {"title": f"Job {n}", "external_id": f"ats-job-{n}"})
        for n in range(3)
    ]


def _candidate(job_id: str, external_id: str) -> dict:
    return {
        "job_id": job_id,
        "external_id": external_id,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.com",
    }


# -- external_id ------------------------------------------------------------------------


def test_a_job_is_found_by_its_external_id(client, auth, jobs):
    page = client.get("/v1/jobs?external_id=ats-job-1", headers=auth)
    assert page.status_code == 200
    assert page.json == {"items": [jobs[1]], "next_cursor": None}


def test_an_unknown_external_id_finds_no_job(client, auth, jobs):
    page = client.get("/v1/jobs?external_id=does-not-exist", headers=auth)
    assert page.status_code == 200
    assert page.json == {"items": [], "next_cursor": None}


def test_another_organizations_external_id_finds_nothing(client, auth, jobs, other_org):
    response = client.post("/admin/v1/api-keys", json={"name": "x"}, headers=other_org.headers)
    other = _bearer(response.json["key"])
    assert client.get("/v1/jobs?external_id=ats-job-1", headers=other).json["items"] == []


def test_a_candidate_is_found_by_its_external_id_and_job(client, auth, jobs):
    ada = _push(client, auth, "/v1/candidates", _candidate(jobs[0]["id"], "ats-cand-1"))
    _push(client, auth, "/v1/candidates", _candidate(jobs[1]["id"], "ats-cand-2"))

    found = client.get("/v1/candidates?external_id=ats-cand-1", headers=auth)
    assert found.status_code == 200
    assert found.json == {"items": [ada], "next_cursor": None}
    of_its_job = client.get(
        f"/v1/candidates?external_id=ats-cand-1&job_id={jobs[0]['id']}", headers=auth
    )
    assert of_its_job.json["items"] == [ada]
    of_another_job = client.get(
        f"/v1/candidates?external_id=ats-cand-1&job_id={jobs[1]['id']}", headers=auth
    )
    assert of_another_job.json["items"] == []
    assert client.get("/v1/candidates?external_id=nope", headers=auth).json["items"] == []


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/candidates"])
def test_external_id_with_a_cursor_or_blank_is_422(client, auth, jobs, path):
    cursor = client.get("/v1/jobs?limit=1", headers=auth).json["next_cursor"]
    with_cursor = client.get(f"{path}?external_id=ats-job-1&cursor={cursor}", headers=auth)
    assert "cursor" in problem_of(with_cursor, 422)["errors"]
    blank = client.get(f"{path}?external_id=%20", headers=auth)
    assert "external_id" in problem_of(blank, 422)["errors"]


# -- an ATS id where a job id belongs ---------------------------------------------------


def test_an_ats_job_id_on_a_candidate_says_how_to_find_the_job(client, auth, jobs, application):
    before = history(application)
    response = client.post("/v1/candidates", json=_candidate("ats-job-1", "c-1"), headers=auth)
    body = problem_of(response, 422)
    message = " ".join(body["errors"]["job_id"])
    assert "GET /v1/jobs?external_id=" in message
    assert "id" in message and "ATS" in message
    assert "GET /v1/jobs?external_id=" in body["detail"]
    assert history(application) == before

    listed = client.get("/v1/candidates?job_id=ats-job-1", headers=auth)
    assert "GET /v1/jobs?external_id=" in " ".join(problem_of(listed, 422)["errors"]["job_id"])


# -- unknown query parameters -------------------------------------------------------------


def _api_routes(flask_app) -> list[tuple[str, str]]:
    """(method, path) of every route of the admin API, the Public API and ops."""
    routes = []
    for rule in flask_app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] not in ("admin", "deliveries", "public", "ops"):
            continue
        path = re.sub(r"<(?:\w+:)?\w+>", str(uuid4()), rule.rule)
        routes += [(method, path) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return routes


def test_every_api_route_is_checked(flask_app):
    paths = {path for _, path in _api_routes(flask_app)}
    assert {"/v1/jobs", "/admin/v1/api-keys", "/admin/v1/deliveries", "/healthz"} <= paths
    assert len(_api_routes(flask_app)) >= 20


def test_an_unknown_query_parameter_is_400_naming_it_on_every_route(
    flask_app, client, org, auth, application
):
    before = history(application)
    for method, path in _api_routes(flask_app):
        headers = auth if path.startswith("/v1/") else org.headers
        response = client.open(
            f"{path}?limit=5&externalId=x", method=method, json={}, headers=headers
        )
        body = problem_of(response, 400)
        assert body["type"] == "/problems/unknown-query-parameter", (method, path)
        assert "externalId" in body["detail"], (method, path)
        assert list(body["errors"]) == ["externalId"] or "limit" in body["errors"], (method, path)
    assert history(application) == before


def test_the_refusal_names_what_the_route_takes(client, org, auth):
    jobs = problem_of(client.get("/v1/jobs?externalid=ats-job-1", headers=auth), 400)
    assert jobs["detail"] == (
        "Unknown query parameter: externalid. This route takes: cursor, external_id, limit."
    )
    deliveries = client.get("/admin/v1/deliveries?event_id=nope", headers=org.headers)
    deliveries = problem_of(deliveries, 400)
    assert deliveries["errors"] == {"event_id": ["Unknown query parameter."]}
    keys = problem_of(client.get("/admin/v1/api-keys?a=1&b=2", headers=org.headers), 400)
    assert keys["detail"] == "Unknown query parameters: a, b. This route takes: cursor, limit."


def test_declared_parameters_still_work(client, org, auth, jobs):
    assert client.get("/v1/jobs?limit=1", headers=auth).status_code == 200
    assert client.get("/admin/v1/events?after=0&limit=5", headers=org.headers).status_code == 200
    export = client.get("/admin/v1/events/export?type=ApiKeyCreated", headers=org.headers)
    assert export.status_code == 200
    assert client.get("/admin/v1/events/export?limit=5", headers=org.headers).status_code == 400
    assert client.get("/admin/v1/deliveries?status=failed", headers=org.headers).status_code == 200


def test_a_credential_in_the_query_string_is_still_401_first(client, auth):
    response = client.get("/v1/jobs?api_key=tenzo_pk_x", headers=auth)
    problem_of(response, 401)
