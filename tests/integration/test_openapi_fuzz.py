"""Fuzz the admin and public APIs from their own OpenAPI document (schemathesis): never
a 500, and every answer (errors included) has the status, content type and body shape
the document gives.

Runs on SQLite only and with a bounded number of examples per operation, so it stays
fast; the behaviour on both backends is asserted in test_admin_api.py. The app is built
at import because schemathesis generates one test per operation at collection time
(its fixture-based loader does not run on pytest 9.2).
"""

from __future__ import annotations

import atexit
import base64
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from domain.actors import OPERATOR
from services.api.app import create_app
from services.bootstrap import build_api, build_application
from services.settings import Settings

OPERATOR_TOKEN = "operator-fuzz-token"
# The foundation's admin endpoints, the credential lifecycle's (admin tokens, operator
# recovery, roll and rename; deliveries and the test event have tests of their own) and
# the Public API.
FUZZED_PATHS = r"^(/admin/v1/(organizations.*|admin-tokens.*|api-keys.*|webhook|events.*)|/v1/.*)$"

DATA_DIR = tempfile.mkdtemp(prefix="tenzo-fuzz-")
atexit.register(shutil.rmtree, DATA_DIR, ignore_errors=True)  # also when only collected
SETTINGS = Settings.from_env(
    {
        "TENZO_DATABASE_URL": f"sqlite:///{DATA_DIR}/events.sqlite3",
        "TENZO_BROKER_URL": f"filesystem://{DATA_DIR}/broker",
        "TENZO_OPERATOR_TOKEN": OPERATOR_TOKEN,
        "TENZO_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
    }
)
TOOLS = build_application(SETTINGS)
API = build_api(SETTINGS, TOOLS)
APP = create_app(API)
ORGANIZATION, ADMIN_TOKEN = TOOLS.create_organization("Fuzz", OPERATOR)
_, API_KEY = TOOLS.create_api_key(ORGANIZATION.id, "fuzz", None, OPERATOR)

schema = schemathesis.openapi.from_wsgi("/openapi.json", APP).include(path_regex=FUZZED_PATHS)


@pytest.fixture(scope="module", autouse=True)
def _close_the_store() -> Iterator[None]:
    yield
    API.close()  # the Public API's counted uses, written while the store is open
    TOOLS.close()


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_the_api_answers_as_its_openapi_document_says(case: Any) -> None:
    if case.path == "/admin/v1/organizations":
        token = OPERATOR_TOKEN
    else:
        token = API_KEY if case.path.startswith("/v1/") else ADMIN_TOKEN
    case.call_and_validate(
        headers={"Authorization": f"Bearer {token}"},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
