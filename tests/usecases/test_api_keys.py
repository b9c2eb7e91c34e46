"""API keys: create, list, revoke, expire, and authenticate with one."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from threading import Barrier

import pytest
from eventsourcing.persistence import RecordConflictError

from domain.errors import Conflict, InvalidInput, NotFound, Unauthorized
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


# -- rolling, renaming, expiring soon (SPEC 9) -------------------------------------------


def test_rolling_a_key_makes_a_new_one_and_ends_the_old_one_after_the_overlap(application, org):
    old, old_plaintext = application.create_api_key(org.id, "ATS sync", None, org.admin)
    now = datetime.now(UTC)
    application.clock = lambda: now
    before = position(application)

    new, new_plaintext = application.roll_api_key(org.id, old.id, 24, org.admin)

    assert recorded_since(application, before) == ["ApiKey.Rolled", "ApiKey.Created"]
    assert new.name == "ATS sync" and new.rolled_from == old.id and new.expires_at is None
    assert new_plaintext != old_plaintext and new.id != old.id
    stored_old = application.get_api_key(org.id, old.id)
    assert stored_old.rolled_to == new.id
    assert stored_old.expires_at == now + timedelta(hours=24)
    # Both work during the overlap...
    application.clock = lambda: now + timedelta(hours=24) - timedelta(microseconds=1)
    assert application.authenticate_api_key(old_plaintext).id == old.id
    assert application.authenticate_api_key(new_plaintext).id == new.id
    # ...and the old one is refused from the very moment it ends.
    application.clock = lambda: now + timedelta(hours=24)
    with records_nothing(application), pytest.raises(Unauthorized, match="expired"):
        application.authenticate_api_key(old_plaintext)
    assert application.authenticate_api_key(new_plaintext).id == new.id
    assert [k.id for k in application.list_api_keys(org.id)[0]] == [new.id, old.id]


def test_rolling_with_no_overlap_ends_the_old_key_at_once(application, org):
    old, old_plaintext = application.create_api_key(org.id, "leaked", None, org.admin)
    new, new_plaintext = application.roll_api_key(org.id, old.id, 0, org.admin)
    with pytest.raises(Unauthorized, match="expired"):
        application.authenticate_api_key(old_plaintext)
    assert application.authenticate_api_key(new_plaintext).id == new.id


def test_rolling_never_extends_the_old_keys_own_expiry(application, org):
    ends = datetime.now(UTC) + timedelta(hours=2)
    old, _ = application.create_api_key(org.id, "short", ends, org.admin)
    application.roll_api_key(org.id, old.id, 168, org.admin)
    assert application.get_api_key(org.id, old.id).expires_at == ends


def test_a_revoked_or_expired_key_cannot_be_rolled(application, org):
    revoked, _ = application.create_api_key(org.id, "revoked", None, org.admin)
    application.revoke_api_key(org.id, revoked.id, org.admin)
    expiring, _ = application.create_api_key(
        org.id, "expiring", datetime.now(UTC) + timedelta(seconds=30), org.admin
    )
    application.clock = lambda: datetime.now(UTC) + timedelta(minutes=1)
    for key in (revoked, expiring):
        with records_nothing(application), pytest.raises(Conflict):
            application.roll_api_key(org.id, key.id, 24, org.admin)


@pytest.mark.parametrize("hours", [-1, 168.5, 1000])
def test_an_overlap_out_of_range_is_refused_and_records_nothing(application, org, hours):
    key, _ = application.create_api_key(org.id, "ci", None, org.admin)
    with records_nothing(application), pytest.raises(InvalidInput) as refused:
        application.roll_api_key(org.id, key.id, hours, org.admin)
    assert refused.value.field == "expires_in_hours"


def test_another_organizations_key_cannot_be_rolled_or_renamed(application, org, other_org):
    key, _ = application.create_api_key(org.id, "ours", None, org.admin)
    with records_nothing(application):
        with pytest.raises(NotFound):
            application.roll_api_key(other_org.id, key.id, 24, other_org.admin)
        with pytest.raises(NotFound):
            application.rename_api_key(other_org.id, key.id, "theirs", other_org.admin)


def test_renaming_a_key_records_it_and_the_same_name_records_nothing(application, org):
    key, plaintext = application.create_api_key(org.id, "old name", None, org.admin)
    before = position(application)
    renamed = application.rename_api_key(org.id, key.id, "  new name ", org.admin)
    assert recorded_since(application, before) == ["ApiKey.Renamed"]
    assert renamed.name == "new name"
    assert application.get_api_key(org.id, key.id).name == "new name"
    with records_nothing(application):
        application.rename_api_key(org.id, key.id, "new name", org.admin)
        with pytest.raises(InvalidInput):
            application.rename_api_key(org.id, key.id, " ", org.admin)
    assert application.authenticate_api_key(plaintext).id == key.id


def test_a_key_expiring_within_seven_days_expires_soon(application, org):
    now = datetime.now(UTC)
    application.clock = lambda: now
    soon, _ = application.create_api_key(org.id, "soon", now + timedelta(days=7), org.admin)
    later, _ = application.create_api_key(
        org.id, "later", now + timedelta(days=7, seconds=1), org.admin
    )
    never, _ = application.create_api_key(org.id, "never", None, org.admin)
    assert soon.expires_soon(now) and not later.expires_soon(now) and not never.expires_soon(now)
    application.revoke_api_key(org.id, soon.id, org.admin)
    assert not application.get_api_key(org.id, soon.id).expires_soon(now)  # revoked: no


def test_two_rolls_of_one_key_at_once_make_one_new_key(application, org):
    key, _ = application.create_api_key(org.id, "ci", None, org.admin)
    barrier = Barrier(2)

    def roll(_: int) -> str:
        barrier.wait()
        try:
            application.roll_api_key(org.id, key.id, 24, org.admin)
        except RecordConflictError:
            return "conflict"
        return "rolled"

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(roll, range(2)))
    keys = application.list_api_keys(org.id)[0]
    # Either they collided (one new key), or one saw the other's roll first: both then
    # rolled (the key is still active in its overlap) and recorded it in turn.
    assert outcomes in (["conflict", "rolled"], ["rolled", "rolled"])
    assert len(keys) == 1 + outcomes.count("rolled")
    rolled = [k for k in keys if k.rolled_from == key.id]
    assert application.get_api_key(org.id, key.id).rolled_to in {k.id for k in rolled}
