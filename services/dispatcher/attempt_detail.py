"""What an attempt records besides its outcome (SPEC 10): the headers as sent and as
received, and ``cause``, one plain sentence a person can act on.

Kept apart from the sender so that the sender stays the small component that makes the
attempt; these functions only describe it. Response headers are the receiver's: those
that may carry its secrets (cookies, credentials) are masked, and at most
``RESPONSE_HEADER_BYTES`` of them are kept.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from http import HTTPStatus
from http.client import RemoteDisconnected

from urllib3.util.ssl_match_hostname import CertificateError

RESPONSE_HEADER_BYTES = 4096
MASK = "[masked]"
TRUNCATED_HEADER = "X-Tenzo-Truncated"

# Headers a receiver may use to hand out or ask for credentials: never kept as sent.
SECRET_HEADERS = frozenset(
    {
        "set-cookie",
        "set-cookie2",
        "cookie",
        "authorization",
        "proxy-authorization",
        "proxy-authenticate",
        "www-authenticate",
        "x-api-key",
        "x-auth-token",
        "x-csrf-token",
        "x-xsrf-token",
        "x-amz-security-token",
    }
)


def _secret_name(name: str) -> bool:
    lowered = name.lower()
    return lowered in SECRET_HEADERS or "token" in lowered or "secret" in lowered


def kept_response_headers(
    headers: Iterable[tuple[str, str]], limit: int = RESPONSE_HEADER_BYTES
) -> dict[str, str]:
    """The receiver's headers as received, secrets masked, at most ``limit`` bytes of
    names and values; a header that no longer fits is left out, and the last entry
    says how many were."""
    kept: dict[str, str] = {}
    used = 0
    left_out = 0
    for name, value in headers:
        shown = MASK if _secret_name(name) else value
        if name in kept:  # repeated header (other than the masked ones): joined, as HTTP allows
            shown = f"{kept[name]}, {shown}" if shown != MASK else MASK
            used -= len(name) + len(kept[name])
        size = len(name) + len(shown)
        if used + size > limit:
            left_out += 1
            continue
        kept[name] = shown
        used += size
    if left_out:
        kept[TRUNCATED_HEADER] = f"{left_out} header(s) past {limit} bytes not kept"
    return kept


def status_cause(status: int, success: bool) -> str | None:
    """The cause of an answered attempt, or None when it succeeded."""
    if success:
        return None
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    answered = f"Your server answered {status} {reason}".rstrip()
    if 300 <= status < 400:
        return f"{answered}: redirects are not followed — configure the final URL."
    if 200 <= status < 300:
        return f"{answered}: only 200, 201, 202 or 204 count as success."
    if status in (429, 503):
        return f"{answered}: it asked for less; attempts slow down and are retried."
    if 400 <= status < 500:
        return f"{answered}: check that it accepts this event and its signature."
    return f"{answered}."


def refused_cause(reason: str) -> str:
    """The cause of an attempt refused before anything was sent (URL, DNS, SSRF guard)."""
    if reason.endswith("does not resolve"):
        return f"Not sent: the {reason[0].lower()}{reason[1:]} — check the URL's host name."
    return f"Not sent: {reason}."


def transport_cause(
    chain: list[BaseException],
    timed_out: bool,
    timeout: float,
    host: str | None,
    address: str | None,
    port: int | None,
) -> str:
    """The cause of an attempt whose connection, TLS handshake or answer failed;
    ``chain`` is the error and everything it wraps."""
    where = _where(address or host, port)
    name = host or address or "the server"
    for error in chain:
        if isinstance(error, ssl.SSLCertVerificationError):
            detail = error.verify_message or str(error)
            return f"The TLS certificate of {name} is not trusted: {detail}."
        if isinstance(error, CertificateError):
            return f"The TLS certificate of {name} is not valid for that name: {error}."
    if timed_out:
        return f"No complete answer within {timeout:g} s from {where}."
    for error in chain:
        if isinstance(error, ssl.SSLError):
            return f"The TLS handshake with {where} failed: {error.reason or error}."
        if isinstance(error, ConnectionRefusedError):
            return f"Connection refused by {where} — is your server listening on that port?"
        if isinstance(error, ConnectionResetError):
            return f"{where} reset the connection before answering — check your server's logs."
        if isinstance(error, RemoteDisconnected):
            return f"{where} closed the connection without answering — check your server's logs."
    root = chain[-1]
    return f"Could not reach {where}: {type(root).__name__}: {root}."


def _where(address: str | None, port: int | None) -> str:
    if address is None:
        return "the server"
    shown = f"[{address}]" if ":" in address else address
    return f"{shown}:{port}" if port else shown
