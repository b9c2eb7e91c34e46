"""TENZO_WEBHOOK_ALLOW_PRIVATE_NETWORKS opens loopback and private ranges, never
link-local ones (SPEC 11): 169.254.0.0/16 and fe80::/10 hold cloud metadata services.
Through the admin API on SQLite and PostgreSQL; the sender's own check is in
test_sender.py."""

from __future__ import annotations

import pytest

from tests.conftest import history
from tests.support.problems import problem_of

ADMIN = "/admin/v1"

LINK_LOCAL = {
    "metadata": "https://169.254.169.254/latest/meta-data/",
    "ipv4-link-local": "https://169.254.0.1:8443/hook",
    "ipv6-link-local": "https://[fe80::1]/hook",
    "ipv6-link-local-end": "https://[febf:ffff::1]/hook",
    "ipv4-mapped": "https://[::ffff:169.254.169.254]/",
    "ipv4-compatible": "https://[::169.254.169.254]/",
    "ipv4-translated": "https://[::ffff:0:169.254.169.254]/",
    "nat64": "https://[64:ff9b::a9fe:a9fe]/",
    "6to4": "https://[2002:a9fe:a9fe::1]/",
}


@pytest.fixture
def settings_env(settings_env: dict[str, str]) -> dict[str, str]:
    return settings_env | {"TENZO_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true"}


@pytest.mark.parametrize(
    "url", ["https://127.0.0.1:8443/hook", "https://10.1.2.3/hook", "https://[::1]:8443/hook"]
)
def test_loopback_and_private_targets_are_allowed(client, org, url):
    response = client.put(f"{ADMIN}/webhook", json={"url": url}, headers=org.headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.json["url"] == url


@pytest.mark.parametrize("case", list(LINK_LOCAL))
def test_link_local_targets_are_422_and_change_nothing(client, org, application, case):
    url = LINK_LOCAL[case]
    client.put(f"{ADMIN}/webhook", json={"url": "https://10.1.2.3/hook"}, headers=org.headers)
    for method in ("put", "patch"):
        before = history(application)
        response = getattr(client, method)(
            f"{ADMIN}/webhook", json={"url": url}, headers=org.headers
        )
        problem = problem_of(response, 422)
        assert list(problem["errors"]) == ["url"]
        assert "link-local" in " ".join(problem["errors"]["url"])
        assert history(application) == before
