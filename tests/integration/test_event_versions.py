"""The newer-events probe of authentication (infrastructure/event_versions.py), on PostgreSQL."""

from __future__ import annotations

import pytest

from domain.actors import OPERATOR
from domain.api_keys import ApiKey
from services.bootstrap import build_application
from services.infrastructure.event_versions import has_newer_events_probe
from services.settings import Settings

pytestmark = pytest.mark.postgres


@pytest.fixture
def application(postgres_url, encryption_key, tmp_path):
    settings = Settings.from_env(
        {
            "TENZO_DATABASE_URL": postgres_url,
            "TENZO_ENCRYPTION_KEY": encryption_key,
            "TENZO_BROKER_URL": f"filesystem://{tmp_path}/broker",
        }
    )
    app = build_application(settings)
    yield app
    app.close()


def test_the_probe_tells_whether_a_key_has_events_after_a_version(application):
    probe = has_newer_events_probe(application)
    assert probe is not None
    organization, _ = application.create_organization("Acme", OPERATOR)
    key, _ = application.create_api_key(organization.id, "ci", None, OPERATOR)
    assert probe(key.id, 0) is True
    assert probe(key.id, 1) is False
    application.revoke_api_key(organization.id, key.id, OPERATOR)
    assert probe(key.id, 1) is True
    assert probe(key.id, 2) is False
    assert probe(organization.id, 1) is False  # another aggregate's stream


def test_the_probe_prepares_its_statement_again_after_deallocate_all(application):
    probe = has_newer_events_probe(application)
    organization, _ = application.create_organization("Acme", OPERATOR)
    key, _ = application.create_api_key(organization.id, "ci", None, OPERATOR)
    pool = application.factory.datastore.pool
    size = pool.get_stats()["pool_size"]
    for _ in range(3):
        for _ in range(size):
            assert probe(key.id, 1) is False  # prepared on every pooled connection
        connections = [pool.getconn() for _ in range(size)]
        for connection in connections:
            # What psycopg itself sends after a ROLLBACK, when it had prepared statements.
            connection.execute("DEALLOCATE ALL")
        for connection in connections:
            pool.putconn(connection)
        assert probe(key.id, 1) is False
        assert probe(key.id, 0) is True
    application.revoke_api_key(organization.id, key.id, OPERATOR)
    assert probe(key.id, 1) is True
    assert application.key_reads.get(ApiKey, key.id).revoked_at is not None
