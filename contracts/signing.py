"""Webhook signatures (SPEC 7), standard library only so receivers can copy this file.

Every signed delivery carries two signatures over the same raw body bytes:

- ``X-Webhook-Signature: sha256=<hex>`` — HMAC-SHA256 of the body alone, the
  GitHub-style header the specification names;
- ``webhook-id`` / ``webhook-timestamp`` / ``webhook-signature`` — the Standard Webhooks
  scheme (https://www.standardwebhooks.com), which binds the message id and the time
  into the signature so a receiver can also refuse replays, and which off-the-shelf
  libraries verify (give them ``standard_webhooks_secret(secret)``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

SIGNATURE_HEADER = "X-Webhook-Signature"
SIGNATURE_PREFIX = "sha256="
STANDARD_ID_HEADER = "webhook-id"
STANDARD_TIMESTAMP_HEADER = "webhook-timestamp"
STANDARD_SIGNATURE_HEADER = "webhook-signature"
STANDARD_SECRET_PREFIX = "whsec_"


def sign(secret: str, body: bytes) -> str:
    """Return ``sha256=`` and the lowercase hex HMAC-SHA256 of ``body`` keyed by ``secret``."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """True only when ``header`` is exactly ``sign(secret, body)``; compared in constant time.

    A missing, malformed or non-ASCII header is simply not a valid signature: False,
    never an exception.
    """
    if not isinstance(header, str):
        return False
    try:
        presented = header.strip().encode("ascii")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(sign(secret, body).encode("ascii"), presented)


def standard_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Return the Standard Webhooks ``v1,<base64>`` signature of ``{id}.{timestamp}.{body}``.

    The key is the secret's UTF-8 bytes, which is what ``standard_webhooks_secret``
    hands to receivers (base64-encoded, as that scheme expects).
    """
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def standard_webhooks_secret(secret: str) -> str:
    """Return the ``whsec_…`` form of ``secret`` that Standard Webhooks libraries accept."""
    return STANDARD_SECRET_PREFIX + base64.b64encode(secret.encode("utf-8")).decode("ascii")


def signature_headers(
    secret: str | None, event_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """Return the signature headers for one attempt, or ``{}`` when no secret is set.

    ``event_id`` is the same on every retry (receivers deduplicate on it);
    ``timestamp`` is the unix time of this attempt.
    """
    if secret is None:
        return {}
    return {
        SIGNATURE_HEADER: sign(secret, body),
        STANDARD_ID_HEADER: event_id,
        STANDARD_TIMESTAMP_HEADER: str(timestamp),
        STANDARD_SIGNATURE_HEADER: standard_signature(secret, event_id, timestamp, body),
    }
