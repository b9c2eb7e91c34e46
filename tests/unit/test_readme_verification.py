"""The README's verification snippet, run as written, against what the dispatcher signs
and what the Standard Webhooks library signs: either secret of a rotation verifies."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from contracts.signing import signature_headers

README = Path(__file__).resolve().parents[2] / "README.md"
OLD = "s3cret-for-the-demo"
NEW = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BODY = '{"id":"evt_1","event":"interview.completed","summary":"ça va"}'.encode()


@pytest.fixture(scope="module")
def verify_webhook() -> Any:
    text = README.read_text()
    section = text[text.index("Verify a delivery in Python with the standard library only") :]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), "README.md", "exec"), namespace)  # noqa: S102 - our own README
    return namespace["verify_webhook"]


@pytest.mark.parametrize("holder", [OLD, NEW])
def test_either_secret_of_a_rotation_verifies(verify_webhook, holder):
    headers = signature_headers(NEW, "evt_1", int(time.time()), BODY, previous_secret=OLD)

    assert verify_webhook(holder, BODY, headers)
    assert not verify_webhook("neither", BODY, headers)
    assert not verify_webhook(holder, BODY + b" ", headers)


@pytest.mark.parametrize("secret", [OLD, NEW])
def test_one_secret_without_a_rotation(verify_webhook, secret):
    headers = signature_headers(secret, "evt_1", int(time.time()), BODY)

    assert verify_webhook(secret, BODY, headers)


def test_a_header_the_standard_library_signed_verifies(verify_webhook):
    now = int(time.time())
    signature = Webhook(NEW).sign("evt_1", datetime.fromtimestamp(now, UTC), BODY.decode())
    headers = {"webhook-id": "evt_1", "webhook-timestamp": str(now), "webhook-signature": signature}

    assert verify_webhook(NEW, BODY, headers)


def test_an_old_timestamp_is_refused(verify_webhook):
    headers = signature_headers(NEW, "evt_1", int(time.time()) - 301, BODY)

    assert not verify_webhook(NEW, BODY, headers)
