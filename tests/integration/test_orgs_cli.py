"""`tenzo orgs create NAME` takes the names POST /admin/v1/organizations takes
(contracts.admin.OrganizationCreateSchema), on SQLite and PostgreSQL."""

from __future__ import annotations

import json

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
