"""Webhook signatures: our own header and the Standard Webhooks headers (SPEC 7)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from svix.webhooks import Webhook as SvixWebhook
from svix.webhooks import WebhookVerificationError as SvixVerificationError

from contracts.signing import (
    sign,
    signature_headers,
    signing_key,
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


# -- whsec_ secrets (SPEC 9): the decoded bytes are the key, as Svix/Standard Webhooks do --

WHSEC = "whsec_" + base64.b64encode(bytes(range(32))).decode()
OLD_WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_a_whsec_secret_is_keyed_with_its_decoded_bytes():
    assert signing_key(WHSEC) == bytes(range(32))
    expected = hmac.new(bytes(range(32)), BODY, hashlib.sha256).hexdigest()
    assert sign(WHSEC, BODY) == "sha256=" + expected


@pytest.mark.parametrize(
    "secret",
    [
        "whsec_",
        "whsec_not base64!",
        "whsec_abc",
        "whsec-abc=",
        "plain",
        "whsec_é",
        "whsec_" + "A-b_" * 10 + "xyz",  # as the dashboard generated them before
    ],
)
def test_a_secret_not_in_whsec_form_keeps_its_utf8_bytes_as_key(secret):
    assert signing_key(secret) == secret.encode("utf-8")
    assert sign(secret, BODY) == (
        "sha256=" + hmac.new(secret.encode(), BODY, hashlib.sha256).hexdigest()
    )


def test_standard_webhooks_secret_leaves_a_whsec_secret_as_it_is():
    assert standard_webhooks_secret(WHSEC) == WHSEC
    assert standard_webhooks_secret(SECRET) == "whsec_" + base64.b64encode(SECRET.encode()).decode()


@pytest.mark.parametrize("secret", [WHSEC, OLD_WHSEC, SECRET])
def test_the_receivers_libraries_verify_with_the_very_string_we_were_given(secret):
    timestamp = int(time.time())
    headers = signature_headers(secret, "evt_1", timestamp, BODY)
    given = secret if secret.startswith("whsec_") else standard_webhooks_secret(secret)

    assert Webhook(given).verify(BODY, headers) is not None
    SvixWebhook(given).verify(BODY, headers)  # raises if not


# -- two secrets during a rotation's overlap -------------------------------------------


def test_during_the_overlap_both_v1_signatures_are_sent_new_first():
    headers = signature_headers(WHSEC, "evt_1", 1_700_000_000, BODY, previous_secret=SECRET)

    assert headers["webhook-signature"] == " ".join(
        [
            standard_signature(WHSEC, "evt_1", 1_700_000_000, BODY),
            standard_signature(SECRET, "evt_1", 1_700_000_000, BODY),
        ]
    )
    assert headers["X-Webhook-Signature"] == sign(WHSEC, BODY)  # the new secret's only


@pytest.mark.parametrize("holder", [WHSEC, SECRET])
def test_a_receiver_holding_either_secret_verifies_with_the_libraries(holder):
    headers = signature_headers(WHSEC, "evt_1", int(time.time()), BODY, previous_secret=SECRET)

    assert Webhook(standard_webhooks_secret(holder)).verify(BODY, headers) is not None
    SvixWebhook(standard_webhooks_secret(holder)).verify(BODY, headers)  # raises if not


def test_a_receiver_holding_neither_secret_is_refused_by_the_libraries():
    headers = signature_headers(WHSEC, "evt_1", int(time.time()), BODY, previous_secret=SECRET)
    stranger = standard_webhooks_secret("neither of them")

    with pytest.raises(WebhookVerificationError):
        Webhook(stranger).verify(BODY, headers)
    with pytest.raises(SvixVerificationError):
        SvixWebhook(stranger).verify(BODY, headers)


@pytest.mark.parametrize("holder", [WHSEC, SECRET])
def test_verify_accepts_either_secret_in_a_header_of_several_signatures(holder):
    headers = signature_headers(WHSEC, "evt_1", 1_700_000_000, BODY, previous_secret=SECRET)

    assert verify(
        holder, BODY, headers["webhook-signature"], msg_id="evt_1", timestamp="1700000000"
    )


def test_verify_of_several_signatures_refuses_another_secret_id_time_or_body():
    headers = signature_headers(WHSEC, "evt_1", 1_700_000_000, BODY, previous_secret=SECRET)
    header = headers["webhook-signature"]

    assert not verify("neither", BODY, header, msg_id="evt_1", timestamp=1_700_000_000)
    assert not verify(SECRET, BODY, header, msg_id="evt_2", timestamp=1_700_000_000)
    assert not verify(SECRET, BODY, header, msg_id="evt_1", timestamp=1_700_000_001)
    assert not verify(SECRET, BODY + b" ", header, msg_id="evt_1", timestamp=1_700_000_000)
    assert not verify(SECRET, BODY, header)  # the id and the time are part of it


def test_verify_accepts_a_signature_the_library_made():
    """Not only our own signing: a header the Standard Webhooks library signs verifies."""
    timestamp = datetime.fromtimestamp(1_700_000_000, UTC)
    header = Webhook(WHSEC).sign("evt_1", timestamp, BODY.decode())

    assert verify(WHSEC, BODY, header, msg_id="evt_1", timestamp=1_700_000_000)
    assert not verify(OLD_WHSEC, BODY, header, msg_id="evt_1", timestamp=1_700_000_000)


@pytest.mark.parametrize("header", ["v1,", "v1,zz v1,", "v1," + "A" * 44, "v2,abc", "v1,é"])
def test_verify_refuses_garbage_standard_headers_without_raising(header):
    assert verify(SECRET, BODY, header, msg_id="evt_1", timestamp=1) is False
