"""SPEC 13: each problem ``type`` URI resolves to a page that explains it."""

from __future__ import annotations

import re
from pathlib import Path

from services.api.problem_types import PROBLEM_TYPES
from tests.support.problems import problem_of

SERVICES = Path(__file__).resolve().parents[2] / "services"


def _key(client, org) -> dict[str, str]:
    response = client.post("/admin/v1/api-keys", json={"name": "ats"}, headers=org.headers)
    return {"Authorization": f"Bearer {response.json['key']}"}


def test_every_problem_type_has_a_page_explaining_it(client):
    for problem_type in PROBLEM_TYPES.values():
        response = client.get(problem_type.uri)
        assert response.status_code == 200, problem_type.uri
        assert response.mimetype == "text/html"
        text = response.get_data(as_text=True)
        assert f"<title>{problem_type.title} — " in text
        assert "What it means" in text and "What to do" in text
        assert f"{problem_type.status}" in text


def test_the_index_lists_every_type(client):
    text = client.get("/problems").get_data(as_text=True)
    for problem_type in PROBLEM_TYPES.values():
        assert f'href="{problem_type.uri}"' in text


def test_an_unknown_type_page_is_404(client):
    problem_of(client.get("/problems/no-such-problem"), 404)


def test_the_types_our_answers_carry_all_resolve(client, org, flask_app):
    auth = _key(client, org)
    answers = [
        client.post("/v1/jobs", data=b"{", headers=auth | {"Content-Type": "application/json"}),
        client.get("/v1/jobs?nope=1", headers=auth),
        client.get("/v1/jobs"),
        client.get("/v1/jobs/00000000-0000-0000-0000-000000000000", headers=auth),
        client.get("/no/such/path"),
        client.post("/v1/jobs", data="title=x", headers=auth),
        client.post("/v1/jobs", json={"title": ""}, headers=auth),
        client.post("/v1/jobs", data=b"x" * (1024 * 1024 + 1), headers=auth),
        client.post("/admin/v1/webhook/test", headers=org.headers),  # 404: no webhook
    ]
    seen = set()
    for answer in answers:
        assert answer.mimetype == "application/problem+json", answer.status_code
        seen.add(answer.json["type"])
    assert {"/problems/validation-error", "/problems/unauthorized"} <= seen
    for uri in seen - {"about:blank"}:
        assert client.get(uri).status_code == 200, uri


def test_no_type_is_written_outside_the_catalogue():
    """Every ``type`` comes from services/api/problem_types.py, so none lacks a page."""
    for path in SERVICES.rglob("*.py"):
        if path.name == "problem_types.py":
            continue
        assert not re.search(r"[\"']/problems/", path.read_text()), path
