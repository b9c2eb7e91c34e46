"""The one check of an RFC 9457 answer, shared by the API tests."""

from __future__ import annotations

import json
from typing import Any

PROBLEM = "application/problem+json"


def problem_of(response: Any, status: int) -> dict[str, Any]:
    """Assert a problem+json answer with this status (a Flask test client's or a
    ``requests`` response); return its body."""
    text = response.get_data(as_text=True) if hasattr(response, "get_data") else response.text
    assert response.status_code == status, text
    assert response.headers["Content-Type"] == PROBLEM, text
    body = json.loads(text)
    assert body["status"] == status
    assert body["title"] and body["type"]
    assert isinstance(body["detail"], str) and len(body["detail"]) > 10
    return body
