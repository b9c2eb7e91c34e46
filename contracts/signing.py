"""Webhook signatures (SPEC 7, 9), standard library only so receivers can copy this file.

Every signed delivery carries two signatures over the same raw body bytes:

- ``X-Webhook-Signature: sha256=<hex>`` — HMAC-SHA256 of the body alone, the
  GitHub-style header the specification names;
- ``webhook-id`` / ``webhook-timestamp`` / ``webhook-signature`` — the Standard Webhooks
  scheme (https://www.standardwebhooks.com), which binds the message id and the time
  into the signature so a receiver can also refuse replays, and which off-the-shelf
  libraries verify (give them ``standard_webhooks_secret(secret)``).

The HMAC key of both is ``signing_key(secret)``: a secret in Standard Webhooks form
(``whsec_`` + base64, as Svix and Standard Webhooks issue them) is keyed with its
decoded bytes, as those libraries do; any other secret with its UTF-8 bytes.

While a rotated secret's overlap lasts (SPEC 9), ``webhook-signature`` carries one
``v1,`` signature per secret, space-separated, the new secret's first; a receiver
holding either secret finds its own among them. ``X-Webhook-Signature`` carries the
new secret's only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

SIGNATURE_HEADER = "X-Webhook-Signature"
SIGNATURE_PREFIX = "sha256="
STANDARD_ID_HEADER = "webhook-id"
STANDARD_TIMESTAMP_HEADER = "webhook-timestamp"
STANDARD_SIGNATURE_HEADER = "webhook-signature"
STANDARD_SECRET_PREFIX = "whsec_"
STANDARD_SIGNATURE_VERSION = "v1,"


def standard_secret_bytes(secret: str) -> bytes | None:
    """The decoded key of a ``whsec_<base64>`` secret, or None when ``secret`` is not in
    that form (no prefix, or not strict standard base64 after it, or nothing in it)."""
    if not secret.startswith(STANDARD_SECRET_PREFIX):
        return None
    try:
        key = base64.b64decode(secret[len(STANDARD_SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        return None
    return key or None


def signing_key(secret: str) -> bytes:
    """The HMAC key of ``secret``: the decoded bytes of a ``whsec_<base64>`` secret, the
    UTF-8 bytes of any other."""
    key = standard_secret_bytes(secret)
    return key if key is not None else secret.encode("utf-8")


def sign(secret: str, body: bytes) -> str:
    """Return ``sha256=`` and the lowercase hex HMAC-SHA256 of ``body`` keyed by
    ``signing_key(secret)``."""
    digest = hmac.new(signing_key(secret), body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify(
    secret: str,
    body: bytes,
    header: str | None,
    *,
    msg_id: str | None = None,
    timestamp: int | str | None = None,
) -> bool:
    """True only when ``header`` holds a signature of ``body`` made with ``secret``;
    compared in constant time.

    ``header`` is either an ``X-Webhook-Signature`` (``sha256=<hex>``) or a Standard
    Webhooks ``webhook-signature``: one or more space-separated ``v1,<base64>``
    signatures (two during a secret's overlap), which also needs the ``webhook-id``
    (``msg_id``) and ``webhook-timestamp``; one of them matching is enough. The
    timestamp's age is not checked here (refuse old ones yourself). A missing,
    malformed or non-ASCII header is simply not a valid signature: False, never an
    exception.
    """
    if not isinstance(header, str):
        return False
    try:
        presented = header.strip().encode("ascii")
    except UnicodeEncodeError:
        return False
    if not presented.startswith(STANDARD_SIGNATURE_VERSION.encode("ascii")):
        return hmac.compare_digest(sign(secret, body).encode("ascii"), presented)
    seconds = str(timestamp)
    if not isinstance(msg_id, str) or not (seconds.isascii() and seconds.isdigit()):
        return False
    expected = standard_signature(secret, msg_id, int(seconds), body).encode("ascii")
    matches = [hmac.compare_digest(expected, entry) for entry in presented.split()]
    return any(matches)  # every entry compared: the time does not say which matched


def standard_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Return the Standard Webhooks ``v1,<base64>`` signature of ``{id}.{timestamp}.{body}``
    keyed by ``signing_key(secret)``, the key ``standard_webhooks_secret`` hands to
    receivers' libraries."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return STANDARD_SIGNATURE_VERSION + base64.b64encode(digest).decode("ascii")


def standard_webhooks_secret(secret: str) -> str:
    """Return the ``whsec_…`` form of ``secret`` that Standard Webhooks and Svix libraries
    accept: a secret already in that form as it is, any other as ``whsec_`` + base64 of
    its UTF-8 bytes."""
    if standard_secret_bytes(secret) is not None:
        return secret
    return STANDARD_SECRET_PREFIX + base64.b64encode(secret.encode("utf-8")).decode("ascii")


def signature_headers(
    secret: str | None,
    event_id: str,
    timestamp: int,
    body: bytes,
    previous_secret: str | None = None,
) -> dict[str, str]:
    """Return the signature headers for one attempt, or ``{}`` when no secret is set.

    ``event_id`` is the same on every retry (receivers deduplicate on it);
    ``timestamp`` is the unix time of this attempt. ``previous_secret``, while a rotated
    secret's overlap lasts, adds its own ``v1,`` signature after the new one's.
    """
    if secret is None:
        return {}
    signatures = [standard_signature(secret, event_id, timestamp, body)]
    if previous_secret is not None:
        signatures.append(standard_signature(previous_secret, event_id, timestamp, body))
    return {
        SIGNATURE_HEADER: sign(secret, body),
        STANDARD_ID_HEADER: event_id,
        STANDARD_TIMESTAMP_HEADER: str(timestamp),
        STANDARD_SIGNATURE_HEADER: " ".join(signatures),
    }
