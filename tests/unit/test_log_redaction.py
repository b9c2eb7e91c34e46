"""What a log line may say about a request target (services/infrastructure/log_redaction.py)."""

from __future__ import annotations

import logging
import uuid

import pytest

from domain.credentials import ADMIN_TOKEN_PREFIX, API_KEY_PREFIX, mint
from services.infrastructure.log_redaction import RedactCredentials, redact_credentials, redact_path

KEY = mint(API_KEY_PREFIX)
TOKEN = mint(ADMIN_TOKEN_PREFIX)


@pytest.mark.parametrize(
    ("target", "logged"),
    [
        (f"/v1/jobs/{KEY.plaintext}", f"/v1/jobs/{KEY.hint}"),
        (f"/admin/v1/api-keys/{TOKEN.plaintext}/revoke", f"/admin/v1/api-keys/{TOKEN.hint}/revoke"),
        (f"/v1/jobs/{KEY.plaintext.replace('_', '%5F')}", f"/v1/jobs/{KEY.hint}"),
        ("/v1/jobs/tenzo_pk_abc", "/v1/jobs/tenzo_pk_[redacted]"),
        (
            "/admin/v1/webhook/whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "/admin/v1/webhook/whsec_[redacted]",
        ),
        ("/x/" + "ab12" * 16, "/x/[redacted]"),
        ("/x/" + "A1b2C3d4" * 5 + "?q=1", "/x/[redacted]"),
        (f"/v1/jobs?api_key={KEY.plaintext}", "/v1/jobs"),
        ("/v1/jobs/a%0Ab", "/v1/jobs/a\\x0ab"),
    ],
)
def test_secrets_in_a_target_are_masked(target, logged):
    assert redact_path(target) == logged


@pytest.mark.parametrize(
    "target",
    [
        f"/admin/v1/deliveries/{uuid.uuid4()}/redeliver",
        "/docs/assets/swagger-ui-standalone-preset.js",
        "/v1/jobs",
        "/admin/v1/api-keys/tenzo_pk_…a1B2",  # already a hint
    ],
)
def test_ordinary_targets_are_logged_as_they_are(target):
    assert redact_path(target) == target


def test_masking_twice_changes_nothing():
    once = redact_credentials(f"{KEY.plaintext} {TOKEN.plaintext} whsec_abcdef")
    assert once == f"{KEY.hint} {TOKEN.hint} whsec_[redacted]"
    assert redact_credentials(once) == once


def test_the_filter_masks_a_formatted_record():
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "bad line %r", (KEY.plaintext,), None
    )
    assert RedactCredentials().filter(record)
    assert record.getMessage() == f"bad line '{KEY.hint}'"
