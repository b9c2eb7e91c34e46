"""The event store on SQLite and PostgreSQL, as two API processes share it (SPEC 2).

Two DeveloperTools applications on the same database stand for two processes: each
reads the other's writes at once (no cache window), and everything survives a restart.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from domain.actors import OPERATOR, SYSTEM
from domain.errors import NotFound, Unauthorized
from services.bootstrap import build_application


@pytest.fixture
def two_processes(settings):
    first, second = build_application(settings), build_application(settings)
    yield first, second
    first.close()
    second.close()


def test_each_process_reads_the_others_writes_at_once(two_processes):
    a, b = two_processes
    organization, token = a.create_organization("Acme", OPERATOR)
    org_id, admin = b.authenticate_admin(token)
    assert org_id == organization.id

    key, plaintext = a.create_api_key(org_id, "ci", None, admin)
    assert [k.id for k in b.list_api_keys(org_id)[0]] == [key.id]
    assert b.authenticate_api_key(plaintext).id == key.id

    b.revoke_api_key(org_id, key.id, admin)
    with pytest.raises(Unauthorized):
        a.authenticate_api_key(plaintext)  # refused on the very next request
    assert a.get_api_key(org_id, key.id).revoked_at is not None

    types = [item["type"] for item in a.event_history(org_id)]
    assert types == ["OrganizationCreated", "AdminTokenIssued", "ApiKeyCreated", "ApiKeyRevoked"]
    assert a.event_history(org_id) == b.event_history(org_id)


def test_an_expired_key_is_refused_without_any_event(two_processes):
    a, b = two_processes
    organization, _ = a.create_organization("Acme", OPERATOR)
    key, plaintext = a.create_api_key(
        organization.id, "short-lived", datetime.now(UTC) + timedelta(seconds=30), SYSTEM
    )
    b.clock = lambda: datetime.now(UTC) + timedelta(minutes=1)
    with pytest.raises(Unauthorized):
        b.authenticate_api_key(plaintext)
    assert b.get_api_key(organization.id, key.id).status(b.clock()) == "expired"


def test_state_and_decrypted_secrets_survive_a_restart(settings):
    first = build_application(settings)
    organization, token = first.create_organization("Acme", OPERATOR)
    first.configure_webhook(
        organization.id, "https://93.184.215.14/hook", "s3cret-value", True, SYSTEM
    )
    key, _ = first.create_api_key(organization.id, "ci", None, SYSTEM)
    first.close()

    again = build_application(settings)
    try:
        assert again.has_organizations()
        assert again.authenticate_admin(token)[0] == organization.id
        webhook = again.get_webhook(organization.id)
        assert (webhook.url, webhook.secret, webhook.enabled) == (
            "https://93.184.215.14/hook",
            "s3cret-value",
            True,
        )
        assert [k.id for k in again.list_api_keys(organization.id)[0]] == [key.id]
        again.delete_webhook(organization.id, SYSTEM)
        with pytest.raises(NotFound):
            again.get_webhook(organization.id)
    finally:
        again.close()


@pytest.mark.postgres
def test_postgresql_inserts_events_in_binary_and_reads_back_every_byte(
    postgres_url, tmp_path, encryption_key
):
    from eventsourcing.persistence import StoredEvent

    from services.infrastructure.postgres_events import BinaryInsertRecorder
    from services.settings import Settings

    settings = Settings.from_env(
        {
            "TENZO_DATABASE_URL": postgres_url,
            "TENZO_BROKER_URL": f"filesystem://{tmp_path}/broker",
            "TENZO_ENCRYPTION_KEY": encryption_key,
        }
    )
    application = build_application(settings)
    try:
        recorder = application.recorder
        assert isinstance(recorder, BinaryInsertRecorder)
        originator = uuid4()
        states = [bytes(range(256)), b"", b"\\x00'\"{},()"]
        stored = [
            StoredEvent(originator, version, "tests:Binary", state)
            for version, state in enumerate(states, start=1)
        ]
        ids = recorder.insert_events(stored)
        assert ids is not None and len(ids) == 3 and ids == sorted(ids)
        read = recorder.select_events(originator)
        assert [(e.originator_version, e.state) for e in read] == list(enumerate(states, 1))
    finally:
        application.close()
