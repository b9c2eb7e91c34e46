"""A credential pasted into a URL never reaches a log line (SPEC 4, 11): real `tenzo serve`
(waitress) and `tenzo api` (gunicorn) processes, whose whole output is read.

API keys and admin tokens in a path are logged as their hint (``tenzo_pk_…a1B2``), also
when percent-encoded; other things that look like bearer secrets (a ``whsec_`` secret,
a long random token) as ``[redacted]``; query strings are never logged; nor is the
request line of a malformed request, which the servers' error logs would quote.
"""

from __future__ import annotations

import secrets

from tests.conftest import OPERATOR_TOKEN
from tests.support.servers import *  # noqa: F403 - the server fixture
from tests.support.servers import Server

WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
RANDOM_TOKEN = secrets.token_hex(32)  # as `openssl rand -hex 32` makes an operator token


def percent_encoded(text: str) -> str:
    """Every character percent-encoded: the same path to a server, not to a grep."""
    return "".join(f"%{byte:02X}" for byte in text.encode())


def test_credentials_in_paths_never_reach_a_log_line(server: Server) -> None:
    status, org = server.request(
        "POST", "/admin/v1/organizations", OPERATOR_TOKEN, {"name": "Log Ltd"}
    )
    assert status == 201, org
    admin = org["admin_token"]
    status, key = server.request("POST", "/admin/v1/api-keys", admin, {"name": "ats"})
    assert status == 201, key
    api_key = key["key"]

    pasted = [
        (f"/v1/jobs/{api_key}", api_key),
        (f"/admin/v1/api-keys/{admin}", admin),
        (f"/admin/v1/api-keys/{admin}/revoke", admin),
        (f"/v1/candidates/x{api_key}y", api_key),
        (f"/v1/jobs/{percent_encoded(api_key)}", api_key),
        (f"/v1/jobs/{api_key}?api_key={api_key}", api_key),
        (f"/admin/v1/webhook/{WEBHOOK_SECRET}", admin),
        (f"/admin/v1/organizations/{RANDOM_TOKEN}", admin),
    ]
    for path, token in pasted:
        status, _ = server.request("GET", path, token)
        assert status in (401, 404, 405), path
    server.raw(f"GET /v1/jobs/{api_key} not-a-version".encode())
    server.raw(f"GET /v1/jobs/{api_key}\x01 HTTP/1.1".encode())
    server.request("GET", "/healthz")

    log = server.stop()
    for secret in (api_key, admin, WEBHOOK_SECRET, RANDOM_TOKEN):
        assert secret not in log
        assert secret[-12:] not in log
    assert percent_encoded(api_key)[:60] not in log
    # The requests were logged, each credential as its hint or [redacted].
    assert f'"GET /v1/jobs/tenzo_pk_…{api_key[-4:]}' in log
    assert f"/admin/v1/api-keys/tenzo_admin_…{admin[-4:]}/revoke" in log
    assert "/admin/v1/webhook/whsec_[redacted]" in log
    assert "/admin/v1/organizations/[redacted]" in log
    assert "/healthz" in log
