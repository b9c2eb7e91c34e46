"""Organizations and their admin tokens."""

from __future__ import annotations

import uuid

import pytest

from domain.actors import OPERATOR
from domain.errors import NotFound, Unauthorized
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
