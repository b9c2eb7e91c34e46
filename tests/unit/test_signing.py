"""Webhook signatures: our own header and the Standard Webhooks headers (SPEC 7)."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from contracts.signing import (
    sign,
    signature_headers,
    standard_signature,
    standard_webhooks_secret,
    verify,
)

SECRET = "whs3cret-ünïcode"
BODY = '{"id":"evt_1","event":"interview.completed","data":{"summary":"ça va"}}'.encode()


def test_sign_is_lowercase_hex_hmac_sha256_of_the_raw_body():
    expected = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, BODY) == "sha256=" + expected
    assert expected == expected.lower()


def test_verify_accepts_its_own_signature():
    assert verify(SECRET, BODY, sign(SECRET, BODY))


def test_verify_refuses_a_wrong_secret():
    assert not verify("another secret", BODY, sign(SECRET, BODY))


def test_verify_refuses_a_tampered_body():
    assert not verify(SECRET, BODY + b" ", sign(SECRET, BODY))


@pytest.mark.parametrize(
    "header",
    [None, "", "sha256=", "sha256=zz", "md5=abc", sign(SECRET, BODY).upper(), "sha256=ü", 42],
)
def test_verify_refuses_garbage_without_raising(header):
    assert verify(SECRET, BODY, header) is False


def test_no_secret_means_no_signature_headers():
    assert signature_headers(None, "evt_1", 1_700_000_000, BODY) == {}


def test_signature_headers_carry_both_schemes():
    headers = signature_headers(SECRET, "evt_1", 1_700_000_000, BODY)
    assert headers == {
        "X-Webhook-Signature": sign(SECRET, BODY),
        "webhook-id": "evt_1",
        "webhook-timestamp": "1700000000",
        "webhook-signature": standard_signature(SECRET, "evt_1", 1_700_000_000, BODY),
    }


def test_standard_webhooks_library_verifies_our_headers():
    timestamp = int(time.time())
    headers = signature_headers(SECRET, "evt_1", timestamp, BODY)

    receiver = Webhook(standard_webhooks_secret(SECRET))

    assert receiver.verify(BODY, headers) is not None


def test_standard_webhooks_library_refuses_another_secret():
    headers = signature_headers(SECRET, "evt_1", int(time.time()), BODY)

    with pytest.raises(WebhookVerificationError):
        Webhook(standard_webhooks_secret("not the secret")).verify(BODY, headers)


def test_standard_signature_binds_the_message_id():
    timestamp = int(time.time())
    headers = signature_headers(SECRET, "evt_1", timestamp, BODY)
    headers["webhook-id"] = "evt_2"

    with pytest.raises(WebhookVerificationError):
        Webhook(standard_webhooks_secret(SECRET)).verify(BODY, headers)


@given(secret=st.text(), body=st.binary())
def test_verify_accepts_sign_for_any_secret_and_body(secret, body):
    assert verify(secret, body, sign(secret, body))
