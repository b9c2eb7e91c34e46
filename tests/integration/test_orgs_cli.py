"""`tenzo orgs create NAME` takes the names POST /admin/v1/organizations takes
(contracts.admin.OrganizationCreateSchema), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from uuid import UUID, uuid4

import pytest
from click.testing import CliRunner

from services.cli.main import main
from tests.conftest import history


def create(settings_env: dict[str, str], name: str):
    return CliRunner().invoke(main, ["orgs", "create", name], env=settings_env)


@pytest.mark.parametrize(
    "name", ["", "   ", "\t\n\u00a0", "x" * 201], ids=["empty", "spaces", "whitespace", "201"]
)
def test_a_name_http_refuses_is_a_usage_error_and_records_nothing(settings_env, application, name):
    before = history(application)
    result = create(settings_env, name)
    assert result.exit_code == 2, result.output  # click's exit code for a bad argument
    assert "Invalid value for NAME" in result.output
    assert "blank" in result.output or "between 1 and 200" in result.output
    assert "admin_token" not in result.output
    assert history(application) == before


@pytest.mark.parametrize("name", ["bad\udcff", "a\x00b"], ids=["not-utf-8", "nul"])
def test_a_name_no_store_can_keep_is_a_usage_error_and_records_nothing(
    settings_env, application, name
):
    """Bytes that are not UTF-8 reach Python as lone surrogates (saving them crashed)."""
    before = history(application)
    result = create(settings_env, name)
    assert result.exit_code == 2, result.output
    assert "not UTF-8 text, or holds NUL" in result.output
    assert history(application) == before


def test_a_good_name_creates_the_organization(settings_env, application):
    before = history(application)
    result = create(settings_env, "  Initech  ")
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert created["name"] == "  Initech  "  # checked, stored as given (like HTTP)
    assert len(history(application)) == len(before) + 2  # the organization and its admin token


# -- recovering a lost admin token (SPEC 9) --------------------------------------------------


def test_orgs_list_prints_every_organization_as_json_lines(settings_env, application):
    created = [json.loads(create(settings_env, name).output) for name in ("Initech", "Hooli")]
    result = CliRunner().invoke(main, ["orgs", "list"], env=settings_env)
    assert result.exit_code == 0, result.output
    listed = [json.loads(line) for line in result.output.splitlines()]
    assert [(o["id"], o["name"]) for o in listed] == [(c["id"], c["name"]) for c in created]
    assert all(o["active_admin_tokens"] == 1 for o in listed)
    assert "tenzo_admin_" not in result.output


def test_issue_admin_token_recovers_an_organization(settings_env, application):
    org = json.loads(create(settings_env, "Initech").output)
    before = history(application)
    result = CliRunner().invoke(
        main, ["orgs", "issue-admin-token", org["id"], "--name", "recovery"], env=settings_env
    )
    assert result.exit_code == 0, result.output
    issued = json.loads(result.output)
    assert issued["org_id"] == org["id"] and issued["name"] == "recovery"
    assert application.authenticate_admin(issued["admin_token"])[0] == UUID(org["id"])
    assert len(history(application)) == len(before) + 1
    listed = CliRunner().invoke(main, ["orgs", "list"], env=settings_env).output
    assert json.loads(listed)["active_admin_tokens"] == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["not-a-uuid"], "is not a valid UUID"),
        ([str(uuid4())], "No organization"),
        ([None, "--name", " "], "Name must be 1 to 100 characters"),
        ([None, "--name", "x" * 101], "between 1 and 100"),
    ],
    ids=["malformed-id", "unknown-org", "blank-name", "long-name"],
)
def test_issue_admin_token_refuses_bad_input_and_records_nothing(
    settings_env, application, args, message
):
    org = json.loads(create(settings_env, "Initech").output)
    args = [org["id"] if arg is None else arg for arg in args]
    before = history(application)
    result = CliRunner().invoke(main, ["orgs", "issue-admin-token", *args], env=settings_env)
    assert result.exit_code != 0
    assert message in result.output
    assert "tenzo_admin_" not in result.output
    assert history(application) == before
