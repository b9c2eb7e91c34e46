"""Recovering a lost admin token as the operator (SPEC 9), as a person would: `tenzo
serve` prints how on first start, `tenzo orgs list` finds the organization and `tenzo
orgs issue-admin-token` issues a token that the running server accepts at once; with
it the lost token is revoked, and is refused from the next request."""

# ruff: noqa: F401, F811 - fixtures imported from test_serve (the tests take them by name)
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from tests.e2e.test_serve import Serve, call, folder, free_port, started, tenzo_executable

RECOVERY_LINE = re.compile(r"Lost it\? `tenzo orgs issue-admin-token ([0-9a-f-]{36})`")


def tenzo(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A `tenzo` command in the server's folder, with the embedded defaults it uses."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("TENZO_")}
    return subprocess.run(
        [tenzo_executable(), *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_operator_recovers_a_lost_admin_token(folder: Path, started: list[Serve]) -> None:
    server = Serve(folder, free_port())
    started.append(server)
    admin = server.wait_for_dashboard().rstrip("/") + "/admin/v1"
    lost = server.admin_token
    assert lost
    hint = next(RECOVERY_LINE.search(line) for line in server.output if "Lost it?" in line)
    assert hint is not None, "".join(server.output)
    org_id = hint.group(1)

    listed = tenzo(folder, "orgs", "list")
    assert listed.returncode == 0, listed.stderr
    [organization] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert organization["id"] == org_id and organization["active_admin_tokens"] == 1

    issued = tenzo(folder, "orgs", "issue-admin-token", org_id, "--name", "Recovered")
    assert issued.returncode == 0, issued.stderr
    recovered = json.loads(issued.stdout)["admin_token"]
    assert recovered not in issued.stderr

    tokens = call("GET", f"{admin}/admin-tokens", recovered)
    assert tokens.status_code == 200, tokens.text
    first = next(t for t in tokens.json()["items"] if t["name"] == "First admin token")
    revoked = call("POST", f"{admin}/admin-tokens/{first['id']}/revoke", recovered)
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    refused = call("GET", f"{admin}/api-keys", lost)
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    assert call("GET", f"{admin}/api-keys", recovered).status_code == 200
    # The recovered token is now the last active one: it cannot be revoked.
    me = next(t for t in tokens.json()["items"] if t["name"] == "Recovered")
    assert call("POST", f"{admin}/admin-tokens/{me['id']}/revoke", recovered).status_code == 409
    assert server.stop() == 0
    printed = "".join(server.output)
    assert recovered not in printed and printed.count(lost) == 1  # the first-start line only
