"""Organizations and their admin tokens."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
from eventsourcing.persistence import RecordConflictError

from domain.actors import OPERATOR
from domain.errors import Conflict, InvalidInput, NotFound, Unauthorized
from tests.support.applications import position, recorded_since, records_nothing


def test_creating_an_organization_issues_its_first_admin_token(application):
    assert not application.has_organizations()
    before = position(application)

    organization, token = application.create_organization("Acme", OPERATOR)

    assert recorded_since(application, before) == ["Organization.Created", "AdminToken.Issued"]
    assert application.has_organizations()
    assert application.get_organization(organization.id).name == "Acme"
    org_id, actor = application.authenticate_admin(token)
    assert org_id == organization.id
    assert actor["type"] == "admin_token"
    assert application.authenticate_admin_token_id(uuid.UUID(actor["id"])) == (org_id, actor)


def test_each_organization_has_its_own_token(application, org, other_org):
    assert application.authenticate_admin(org.admin_token)[0] == org.id
    assert application.authenticate_admin(other_org.admin_token)[0] == other_org.id
    assert org.admin != other_org.admin


@pytest.mark.parametrize(
    "token",
    ["", "not-a-token", "tenzo_admin_", "tenzo_admin_" + "x" * 40, "tenzo_pk_" + "x" * 40],
)
def test_a_malformed_or_unknown_admin_token_is_refused_and_records_nothing(application, org, token):
    with records_nothing(application), pytest.raises(Unauthorized):
        application.authenticate_admin(token)


def test_a_token_altered_by_one_character_is_refused(application, org):
    last = org.admin_token[-1]
    altered = org.admin_token[:-1] + ("A" if last != "A" else "B")
    with records_nothing(application), pytest.raises(Unauthorized):
        application.authenticate_admin(altered)


def test_an_unknown_token_id_or_organization_is_not_found(application, org):
    with records_nothing(application):
        with pytest.raises(Unauthorized):
            application.authenticate_admin_token_id(uuid.uuid4())
        with pytest.raises(Unauthorized):
            application.authenticate_admin_token_id(org.id)  # an organization is not a token
        with pytest.raises(NotFound):
            application.get_organization(uuid.uuid4())


# -- admin tokens (SPEC 9) -----------------------------------------------------------------


def test_an_admin_can_issue_another_token_and_list_them(application, org, other_org):
    before = position(application)
    token, plaintext = application.issue_admin_token(org.id, "  CI deploys ", org.admin)
    assert recorded_since(application, before) == ["AdminToken.Issued"]
    assert token.name == "CI deploys" and token.status == "active"
    assert plaintext.startswith("tenzo_admin_") and token.token_hint.endswith(plaintext[-4:])
    assert application.authenticate_admin(plaintext)[0] == org.id
    listed = application.list_admin_tokens(org.id)
    assert [t.id for t in listed] == [token.id, uuid.UUID(org.admin["id"])]
    assert listed[1].name == "First admin token"
    assert [t.org_id for t in application.list_admin_tokens(other_org.id)] == [other_org.id]


def test_a_revoked_token_is_refused_and_the_last_active_one_cannot_be_revoked(application, org):
    second, second_plaintext = application.issue_admin_token(org.id, "second", org.admin)
    first_id = uuid.UUID(org.admin["id"])
    before = position(application)

    revoked = application.revoke_admin_token(org.id, second.id, org.admin)

    assert recorded_since(application, before) == [
        "AdminToken.Revoked",
        "Organization.AdminTokenRevoked",
    ]
    assert revoked.status == "revoked" and revoked.revoked_at is not None
    with pytest.raises(Unauthorized, match="revoked"):
        application.authenticate_admin(second_plaintext)
    with records_nothing(application):
        assert application.revoke_admin_token(org.id, second.id, org.admin).revoked
        with pytest.raises(Conflict, match="last active"):
            application.revoke_admin_token(org.id, first_id, org.admin)
    assert application.authenticate_admin(org.admin_token)[0] == org.id


def test_the_operator_issues_a_token_for_an_organization_that_lost_its_own(application, org):
    token, plaintext = application.issue_admin_token(org.id, "recovery", OPERATOR)
    assert application.authenticate_admin(plaintext)[0] == org.id
    # The lost token can now be revoked with the new one.
    lost = application.revoke_admin_token(org.id, uuid.UUID(org.admin["id"]), org.admin)
    assert lost.revoked and token.status == "active"
    with records_nothing(application), pytest.raises(NotFound):
        application.issue_admin_token(uuid.uuid4(), "nowhere", OPERATOR)


def test_tokens_of_another_organization_are_not_found(application, org, other_org):
    with records_nothing(application), pytest.raises(NotFound):
        application.revoke_admin_token(other_org.id, uuid.UUID(org.admin["id"]), other_org.admin)


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_a_bad_token_name_is_refused_and_records_nothing(application, org, name):
    with records_nothing(application), pytest.raises(InvalidInput):
        application.issue_admin_token(org.id, name, org.admin)


def test_organizations_are_listed_oldest_first(application, org, other_org):
    assert [o.id for o in application.list_organizations()] == [org.id, other_org.id]


def test_two_revocations_at_once_leave_one_token_active(application, org):
    """Each revocation sees the other token active; they collide on the organization, and
    the one that reads again finds its token the last active one."""
    second, _ = application.issue_admin_token(org.id, "second", org.admin)
    ids = [uuid.UUID(org.admin["id"]), second.id]
    for _ in range(3):  # a few tries at the race; each must end with one token active
        barrier = Barrier(2)

        def revoke(token_id: uuid.UUID, barrier: Barrier = barrier) -> str:
            barrier.wait()
            try:
                application.revoke_admin_token(org.id, token_id, OPERATOR)
            except (Conflict, RecordConflictError):
                return "refused"
            return "revoked"

        with ThreadPoolExecutor(2) as pool:
            outcomes = sorted(pool.map(revoke, ids))
        assert outcomes == ["refused", "revoked"]
        active = [t for t in application.list_admin_tokens(org.id) if t.status == "active"]
        assert len(active) == 1
        # Start the next round with two active tokens again.
        replacement, _ = application.issue_admin_token(org.id, "replacement", org.admin)
        ids = [active[0].id, replacement.id]
