"""Lists cost a constant number of statements, however many rows a page holds (no
N+1): the keys with their usage, jobs, candidates of a job. And the key list pages."""

from __future__ import annotations

import pytest

from tests.integration.test_public_api import JOB, bearer, create_key
from tests.support.sql_statements import statements_of_this_thread

ADMIN = "/admin/v1"


def statements_of(monkeypatch, application, org_id, send) -> list[str]:
    application.catalog.wait_for_writes(org_id)  # so the read itself never waits
    with monkeypatch.context() as patch:
        seen = statements_of_this_thread(patch, application)
        response = send()
        assert response.status_code == 200, response.json
        return list(seen)


def test_the_key_list_costs_the_same_statements_for_2_or_30_keys(
    client, org, application, monkeypatch
):
    for n in range(2):
        create_key(client, org, name=f"key {n}")
    list_keys = lambda: client.get(f"{ADMIN}/api-keys", headers=org.headers)  # noqa: E731
    list_keys()  # the first request of a process prepares statements
    few = statements_of(monkeypatch, application, org.id, list_keys)
    for n in range(28):
        create_key(client, org, name=f"more {n}")

    many = statements_of(monkeypatch, application, org.id, list_keys)

    assert len(list_keys().json["items"]) == 30
    assert len(many) == len(few)
    assert many.count("select_events") == few.count("select_events")  # none per key


def test_job_and_candidate_lists_cost_the_same_statements_for_2_or_30_rows(
    client, org, application, monkeypatch
):
    auth = bearer(create_key(client, org)["key"])
    job_ids = [
        client.post("/v1/jobs", json=JOB | {"external_id": f"job-{n}"}, headers=auth).json["id"]
        for n in range(2)
    ]
    candidate = {"first_name": "Ada", "last_name": "L", "email": "ada@example.com"}

    def add_candidates(count: int, start: int) -> None:
        for n in range(start, start + count):
            body = candidate | {"job_id": job_ids[0], "external_id": f"c-{n}"}
            assert client.post("/v1/candidates", json=body, headers=auth).status_code == 201

    add_candidates(2, 0)
    list_jobs = lambda: client.get("/v1/jobs?limit=100", headers=auth)  # noqa: E731
    list_candidates = lambda: client.get(  # noqa: E731
        f"/v1/candidates?job_id={job_ids[0]}&limit=100", headers=auth
    )
    list_jobs(), list_candidates()
    few = [
        statements_of(monkeypatch, application, org.id, send)
        for send in (list_jobs, list_candidates)
    ]
    for n in range(28):
        client.post("/v1/jobs", json=JOB | {"external_id": f"more-{n}"}, headers=auth)
    add_candidates(28, 2)

    many = [
        statements_of(monkeypatch, application, org.id, send)
        for send in (list_jobs, list_candidates)
    ]

    assert len(list_jobs().json["items"]) == 30
    assert len(list_candidates().json["items"]) == 30
    assert [len(s) for s in many] == [len(s) for s in few]


def test_the_key_list_pages_newest_first(client, org):
    created = [create_key(client, org, name=f"key {n}")["id"] for n in range(5)]

    first = client.get(f"{ADMIN}/api-keys?limit=2", headers=org.headers).json
    second = client.get(
        f"{ADMIN}/api-keys?limit=2&cursor={first['next_cursor']}", headers=org.headers
    ).json
    last = client.get(
        f"{ADMIN}/api-keys?limit=2&cursor={second['next_cursor']}", headers=org.headers
    ).json

    listed = [key["id"] for page in (first, second, last) for key in page["items"]]
    assert listed == created[::-1]
    assert last["next_cursor"] is None
    assert len(client.get(f"{ADMIN}/api-keys", headers=org.headers).json["items"]) == 5


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=x", "cursor=nope"])
def test_bad_key_list_paging_is_422_problem(client, org, query):
    response = client.get(f"{ADMIN}/api-keys?{query}", headers=org.headers)

    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
