"""Decoded-once, checked-every-read aggregates (domain/fast_forward.py), in memory."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest
from eventsourcing.application import Application

from domain.actors import OPERATOR
from domain.api_keys import ApiKey
from domain.credentials import API_KEY_PREFIX, mint
from domain.errors import NotFound
from domain.fast_forward import FastForwardReads
from domain.organizations import Organization

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
def app():
    return Application(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})


def saved_key(app) -> ApiKey:
    minted = mint(API_KEY_PREFIX)
    key = ApiKey(
        org_id=uuid4(),
        name="ci",
        key_hash=minted.hash,
        key_hint=minted.hint,
        expires_at=None,
        actor=OPERATOR,
    )
    app.save(key)
    return key


def test_a_change_saved_after_a_read_shows_in_the_next_read(app):
    reads = FastForwardReads(app)
    key = saved_key(app)
    first = reads.get(ApiKey, key.id)
    assert first.status(NOW) == "active"
    assert reads.get(ApiKey, key.id) is first  # nothing newer: the decoded copy

    stored = app.repository.get(key.id)
    stored.revoke(now=NOW, actor=OPERATOR)
    app.save(stored)

    again = reads.get(ApiKey, key.id)
    assert again.status(NOW) == "revoked"
    assert again.version == 2
    assert first.status(NOW) == "active"  # a returned copy is never changed in place


def test_newer_events_are_asked_for_on_every_read(app):
    asked = []

    def has_newer_events(aggregate_id, version):
        asked.append((aggregate_id, version))
        return False

    reads = FastForwardReads(app, has_newer_events=has_newer_events)
    key = saved_key(app)
    for _ in range(3):
        reads.get(ApiKey, key.id)
    assert asked == [(key.id, 1), (key.id, 1)]  # the first read decoded everything


def test_unknown_ids_and_other_types_are_not_found(app):
    reads = FastForwardReads(app)
    with pytest.raises(NotFound):
        reads.get(ApiKey, uuid4())
    organization = Organization(name="Acme", actor=OPERATOR)
    app.save(organization)
    with pytest.raises(NotFound):
        reads.get(ApiKey, organization.id)


def test_at_most_maxsize_aggregates_are_kept(app):
    reads = FastForwardReads(app, maxsize=2)
    keys = [saved_key(app) for _ in range(3)]
    for key in keys:
        reads.get(ApiKey, key.id)
    assert len(reads._kept) == 2
    assert reads.get(ApiKey, keys[0].id).id == keys[0].id
