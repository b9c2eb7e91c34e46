"""Organizations and their admin tokens."""

from __future__ import annotations

import uuid

import pytest

from domain.actors import OPERATOR
from domain.errors import NotFound, Unauthorized
from tests.support.applications import position, recorded_since, records_nothing


def test_creating_an_organization_issues_its_first_admin_token(tools):
    assert not tools.has_organizations()
    before = position(tools)

    organization, token = tools.create_organization("Acme", OPERATOR)

    assert recorded_since(tools, before) == ["Organization.Created", "AdminToken.Issued"]
    assert tools.has_organizations()
    assert tools.get_organization(organization.id).name == "Acme"
    org_id, actor = tools.authenticate_admin(token)
    assert org_id == organization.id
    assert actor["type"] == "admin_token"
    assert tools.authenticate_admin_token_id(uuid.UUID(actor["id"])) == (org_id, actor)


def test_each_organization_has_its_own_token(tools, org, other_org):
    assert tools.authenticate_admin(org.admin_token)[0] == org.id
    assert tools.authenticate_admin(other_org.admin_token)[0] == other_org.id
    assert org.admin != other_org.admin


@pytest.mark.parametrize(
    "token",
    ["", "not-a-token", "tenzo_admin_", "tenzo_admin_" + "x" * 40, "tenzo_pk_" + "x" * 40],
)
def test_a_malformed_or_unknown_admin_token_is_refused_and_records_nothing(tools, org, token):
    with records_nothing(tools), pytest.raises(Unauthorized):
        tools.authenticate_admin(token)


def test_a_token_altered_by_one_character_is_refused(tools, org):
    last = org.admin_token[-1]
    altered = org.admin_token[:-1] + ("A" if last != "A" else "B")
    with records_nothing(tools), pytest.raises(Unauthorized):
        tools.authenticate_admin(altered)


def test_an_unknown_token_id_or_organization_is_not_found(tools, org):
    with records_nothing(tools):
        with pytest.raises(Unauthorized):
            tools.authenticate_admin_token_id(uuid.uuid4())
        with pytest.raises(Unauthorized):
            tools.authenticate_admin_token_id(org.id)  # an organization is not a token
        with pytest.raises(NotFound):
            tools.get_organization(uuid.uuid4())
