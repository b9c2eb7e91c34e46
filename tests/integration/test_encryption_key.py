"""A key that cannot read the event store (SPEC 11), on SQLite and PostgreSQL.

A process given another TENZO_ENCRYPTION_KEY than the one its store was written with
refuses to start with a message saying so (it used to start, report ready, and answer
every admin request with 500 "Invalid cipher tag"), and /readyz is never ready while
its key cannot decrypt the store. An empty store takes any key.
"""

from __future__ import annotations

import base64
import os
from dataclasses import replace

import pytest

from services.api.app import create_app
from services.bootstrap import build_api, build_application
from services.settings import ConfigurationError, Settings
from tests.conftest import Org

REFUSAL = "TENZO_ENCRYPTION_KEY cannot read the existing event store"


def another_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def test_a_process_with_another_key_refuses_to_start(settings: Settings, org: Org) -> None:
    with pytest.raises(ConfigurationError) as refused:
        build_application(replace(settings, encryption_key=another_key()))
    message = str(refused.value)
    assert REFUSAL in message
    assert "is it the key this store was written with?" in message
    assert settings.encryption_key not in message


def test_the_key_the_store_was_written_with_reads_it(settings: Settings, org: Org) -> None:
    again = build_application(settings)
    try:
        assert again.get_organization(org.id).name == "Acme"
    finally:
        again.close()


def test_an_empty_store_takes_any_key(settings: Settings) -> None:
    for key in (settings.encryption_key, another_key()):
        build_application(replace(settings, encryption_key=key)).close()


def test_readyz_is_not_ready_while_the_key_cannot_decrypt(settings: Settings) -> None:
    """An API process started on an empty store, which another process (with the
    right key) then writes to: its /readyz says so instead of "ready"."""
    own_settings = replace(settings, encryption_key=another_key())
    own = build_application(own_settings)
    writer = build_application(settings)
    try:
        client = create_app(build_api(own_settings, own)).test_client()
        assert client.get("/readyz").status_code == 200  # nothing stored yet
        Org(writer, "Acme")
        refused = client.get("/readyz")
        assert refused.status_code == 503
        assert refused.json["status"] == "not ready"
        assert "TENZO_ENCRYPTION_KEY" in refused.json["checks"]["event_store"]
        assert refused.json["checks"]["broker"] == "ok"
    finally:
        own.close()
        writer.close()
