"""API keys: create, list, revoke, expire, and authenticate with one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from domain.errors import InvalidInput, NotFound, Unauthorized
from tests.support.applications import position, recorded_since, records_nothing


def test_a_new_key_authenticates_and_its_plaintext_is_not_stored(application, org):
    before = position(application)

    key, plaintext = application.create_api_key(org.id, "  ATS sync  ", None, org.admin)

    assert recorded_since(application, before) == ["ApiKey.Created"]
    assert key.name == "ATS sync" and key.org_id == org.id
    assert key.status(application.clock()) == "active"
    assert plaintext.startswith("tenzo_pk_") and key.key_hint.endswith(plaintext[-4:])
    assert plaintext not in (key.key_hash, key.key_hint)
    assert application.authenticate_api_key(plaintext).id == key.id
    assert application.get_api_key(org.id, key.id).name == "ATS sync"


def test_keys_are_listed_newest_first_per_organization(application, org, other_org):
    first, _ = application.create_api_key(org.id, "first", None, org.admin)
    second, _ = application.create_api_key(org.id, "second", None, org.admin)
    theirs, _ = application.create_api_key(other_org.id, "theirs", None, other_org.admin)

    assert [k.id for k in application.list_api_keys(org.id)[0]] == [second.id, first.id]
    assert [k.id for k in application.list_api_keys(other_org.id)[0]] == [theirs.id]


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_a_bad_name_is_refused_and_records_nothing(application, org, name):
    with records_nothing(application), pytest.raises(InvalidInput) as refused:
        application.create_api_key(org.id, name, None, org.admin)
    assert refused.value.field == "name"


def test_an_expiry_in_the_past_is_refused_and_records_nothing(application, org):
    with records_nothing(application), pytest.raises(InvalidInput) as refused:
        application.create_api_key(
            org.id, "old", datetime.now(UTC) - timedelta(seconds=1), org.admin
        )
    assert refused.value.field == "expires_at"


def test_an_expiry_without_offset_is_utc(application, org):
    naive = datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=1)
    key, _ = application.create_api_key(org.id, "naive", naive, org.admin)
    assert key.expires_at == naive.replace(tzinfo=UTC)


def test_a_revoked_key_is_refused_and_revoking_again_records_nothing(application, org):
    key, plaintext = application.create_api_key(org.id, "leaked", None, org.admin)
    before = position(application)

    revoked = application.revoke_api_key(org.id, key.id, org.admin)

    assert recorded_since(application, before) == ["ApiKey.Revoked"]
    assert revoked.status(application.clock()) == "revoked"
    with pytest.raises(Unauthorized, match="revoked"):
        application.authenticate_api_key(plaintext)
    with records_nothing(application):
        again = application.revoke_api_key(org.id, key.id, org.admin)
    assert again.revoked_at == revoked.revoked_at
    assert [k.id for k in application.list_api_keys(org.id)[0]] == [key.id]  # still listed


def test_a_key_past_its_expiry_is_refused_and_still_listed(application, org):
    key, plaintext = application.create_api_key(
        org.id, "short-lived", datetime.now(UTC) + timedelta(seconds=30), org.admin
    )
    assert application.authenticate_api_key(plaintext).id == key.id

    application.clock = lambda: datetime.now(UTC) + timedelta(minutes=1)

    with records_nothing(application), pytest.raises(Unauthorized, match="expired"):
        application.authenticate_api_key(plaintext)
    [listed], _ = application.list_api_keys(org.id)
    assert listed.status(application.clock()) == "expired"


@pytest.mark.parametrize("presented", ["", "tenzo_pk_", "tenzo_pk_" + "x" * 40, "Bearer x"])
def test_a_malformed_or_unknown_key_is_refused(application, org, presented):
    application.create_api_key(org.id, "real", None, org.admin)
    with records_nothing(application), pytest.raises(Unauthorized):
        application.authenticate_api_key(presented)


def test_an_admin_token_is_not_an_api_key(application, org):
    with pytest.raises(Unauthorized):
        application.authenticate_api_key(org.admin_token)


def test_another_organizations_key_does_not_exist(application, org, other_org):
    key, plaintext = application.create_api_key(org.id, "ours", None, org.admin)

    with records_nothing(application):
        with pytest.raises(NotFound):
            application.get_api_key(other_org.id, key.id)
        with pytest.raises(NotFound):
            application.revoke_api_key(other_org.id, key.id, other_org.admin)
        with pytest.raises(NotFound):
            application.get_api_key(org.id, uuid.uuid4())
    assert application.authenticate_api_key(plaintext).id == key.id  # untouched
