"""How every endpoint reads a JSON body (services/api/request_bodies.py), on SQLite and
PostgreSQL: strings a store cannot keep and nesting past the limit are 400 when the body
is parsed, a chunked body over 1 MiB is 413, and none of them changes the history.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from contracts.json_text import MAX_DEPTH
from services.api.embedded_server import EmbeddedServer
from tests.conftest import history
from tests.support.problems import problem_of

MIB = 1024 * 1024

# One string field per endpoint that takes a body; "%s" is where the text goes.
ENDPOINTS = {
    "api-key": ("post", "/admin/v1/api-keys", '{"name": "%s"}'),
    "job": ("post", "/v1/jobs", '{"title": "%s"}'),
    "candidate": (
        "post",
        "/v1/candidates",
        '{"job_id": "JOB_ID", "first_name": "%s", "last_name": "L", "email": "a@example.com"}',
    ),
    "webhook": ("patch", "/admin/v1/webhook", '{"secret": "whsec-%s-long-enough"}'),
    "organization": ("post", "/admin/v1/organizations", '{"name": "%s"}'),
}

# JSON escapes as sent on the wire (a backslash, then u and four hex digits).
UNSTORABLE = {
    "lone-high-surrogate": r"\ud800",
    "lone-low-surrogate": r"\udc00",
    "upper-case-escape": r"ok \uDBFF",
    "pair-in-the-wrong-order": r"\ude00\ud83d",
    "high-surrogate-at-the-end": r"\ud83d",
    "nul": r"a\u0000b",
}


@pytest.fixture
def api_key(client, org) -> str:
    response = client.post("/admin/v1/api-keys", json={"name": "ats"}, headers=org.headers)
    assert response.status_code == 201
    return str(response.json["key"])


@pytest.fixture
def send(client, org, api_key, operator_headers):
    """Send a raw JSON text to an endpoint of ENDPOINTS, with that endpoint's credential."""
    public = {"Authorization": f"Bearer {api_key}"}
    job = client.post("/v1/jobs", json={"title": "Engineer"}, headers=public).json
    client.put("/admin/v1/webhook", json={"url": "https://93.184.215.14/hook"}, headers=org.headers)
    credentials = {"/admin/v1/organizations": operator_headers, "/v1/": public}

    def send(endpoint: str, raw: str, **headers: str) -> Any:
        method, path, _ = ENDPOINTS[endpoint]
        auth = next((h for p, h in credentials.items() if path.startswith(p)), org.headers)
        return getattr(client, method)(
            path,
            data=raw.replace("JOB_ID", job["id"]).encode(),
            content_type="application/json",
            headers=auth | headers,
        )

    return send


@pytest.mark.parametrize("text", list(UNSTORABLE.values()), ids=list(UNSTORABLE))
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_nul_and_lone_surrogates_in_values_are_400_and_change_nothing(
    send, application, endpoint, text
):
    before = history(application)
    response = send(endpoint, ENDPOINTS[endpoint][2] % text)
    problem = problem_of(response, 400)
    assert problem["type"] == "/problems/malformed-request"
    assert "NUL" in problem["detail"] and "surrogate" in problem["detail"]
    assert history(application) == before


@pytest.mark.parametrize("text", [r"\ud800", r"\u0000"], ids=["lone-surrogate", "nul"])
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_nul_and_lone_surrogates_in_keys_are_400_and_change_nothing(
    send, application, endpoint, text
):
    before = history(application)
    template = ENDPOINTS[endpoint][2]
    raw = template.replace("{", f'{{"k{text}": 1, ', 1) % "fine"
    problem = problem_of(send(endpoint, raw), 400)
    assert "NUL" in problem["detail"] and "surrogate" in problem["detail"]
    assert history(application) == before


def test_the_public_api_refuses_them_also_with_an_idempotency_key(send, application):
    before = history(application)
    response = send("job", r'{"title": "\ud800"}', **{"Idempotency-Key": "job-1"})
    problem_of(response, 400)
    assert history(application) == before


@pytest.mark.parametrize("endpoint", ["api-key", "job", "organization"])
def test_a_surrogate_pair_escape_is_one_character_and_kept(send, endpoint):
    response = send(endpoint, ENDPOINTS[endpoint][2] % r"smile \ud83d\ude00 \u00e9")
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.json
    assert "smile \U0001f600 é" in (body.get("name"), body.get("title"))


def test_a_backslash_before_u_d800_is_just_text(send):
    response = send("api-key", r'{"name": "C:\\ud800"}')
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.json["name"] == "C:\\ud800"


DEEP = {
    "100000-arrays": "[" * 100_000 + "]" * 100_000,
    "5000-objects": '{"a":' * 5000 + "1" + "}" * 5000,
    "name-past-the-limit": '{"name": ' + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "}",
}


@pytest.mark.parametrize("raw", list(DEEP.values()), ids=list(DEEP))
@pytest.mark.parametrize("endpoint", ["api-key", "job", "webhook", "organization"])
def test_deeply_nested_json_is_400_and_changes_nothing(send, application, endpoint, raw):
    assert len(raw) < MIB
    before = history(application)
    problem = problem_of(send(endpoint, raw), 400)
    assert problem["type"] == "/problems/malformed-request"
    assert f"nested more than {MAX_DEPTH} levels" in problem["detail"]
    assert history(application) == before


def test_deeply_nested_json_with_an_idempotency_key_is_400(send, application):
    before = history(application)
    response = send("job", DEEP["100000-arrays"], **{"Idempotency-Key": "deep"})
    problem_of(response, 400)
    assert history(application) == before


def test_nesting_up_to_the_limit_is_read_and_validated(send, application):
    before = history(application)
    depth = MAX_DEPTH - 1  # the body itself is the first level
    raw = '{"name": ' + "[" * depth + "]" * depth + "}"
    assert "name" in problem_of(send("api-key", raw), 422)["errors"]
    assert history(application) == before


# -- chunked bodies, over real HTTP ------------------------------------------------------


@pytest.fixture
def server(flask_app) -> Iterator[str]:
    """The app behind the HTTP server of `tenzo serve` (waitress), which reads chunked
    bodies and refuses one over the limit itself, as the app would."""
    http = EmbeddedServer(flask_app, "127.0.0.1", 0)
    thread = threading.Thread(target=http.serve_until_stopped)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.port}"
    finally:
        http.stop()
        thread.join(timeout=20)


def chunked(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    """A generator body: requests sends it with Transfer-Encoding: chunked."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def post_chunked(url: str, body: bytes, org: Any) -> requests.Response:
    headers = org.headers | {"Content-Type": "application/json"}
    response = requests.post(url, data=chunked(body), headers=headers, timeout=30)
    assert "Content-Length" not in response.request.headers
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    return response


def name_body(size: int) -> bytes:
    """A key body of exactly ``size`` bytes."""
    frame = b'{"name": ""}'
    return frame[:-2] + b"x" * (size - len(frame)) + frame[-2:]


@pytest.mark.parametrize("size", [MIB + 1, 2 * MIB])
def test_a_chunked_body_over_1_mib_is_413_like_one_with_a_content_length(
    server, client, org, application, size
):
    before = history(application)
    response = post_chunked(f"{server}/admin/v1/api-keys", name_body(size), org)
    problem = problem_of(response, 413)
    with_length = client.post(
        "/admin/v1/api-keys",
        data=name_body(size),
        headers=org.headers,
        content_type="application/json",
    )
    assert problem == problem_of(with_length, 413)
    assert "1 MiB" in problem["detail"]
    assert history(application) == before


def test_a_chunked_body_of_exactly_1_mib_is_read_whole(server, org, application):
    before = history(application)
    response = post_chunked(f"{server}/admin/v1/api-keys", name_body(MIB), org)
    problem = problem_of(response, 422)  # the whole body was read: the name is too long
    assert list(problem["errors"]) == ["name"]
    assert history(application) == before


def test_a_small_chunked_body_works(server, org):
    response = post_chunked(f"{server}/admin/v1/api-keys", b'{"name": "chunked"}', org)
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "chunked"
