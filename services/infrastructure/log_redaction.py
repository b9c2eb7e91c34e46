"""Credentials never reach a log line (SPEC 4, 11), even pasted into a URL.

A client may put an API key or an admin token in a path (``GET /v1/jobs/tenzo_pk_…``);
the servers' access logs, and their error logs quoting a malformed request line, would
write it down. Every line they write passes through these functions:

- :func:`redact_credentials` masks, anywhere in a text, API keys and admin tokens to
  their hint (``tenzo_pk_…a1B2``, as the API shows them; ``tenzo_pk_[redacted]`` when
  too short to be one) and Standard Webhooks secrets to ``whsec_[redacted]``;
- :func:`redact_path` logs a path: percent-decoded (as gunicorn's ``%(U)s`` is, so an
  encoded key is masked too), control characters escaped (no forged log lines), each
  segment through :func:`redact_credentials`, and a segment that looks like some other
  bearer secret (32 or more token characters, letters and digits, not a UUID: an
  operator token, a base64 key) as ``[redacted]``. Query strings are never logged.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote

from domain.credentials import hint

_CREDENTIAL = re.compile(r"tenzo_(?:pk|admin)_[0-9A-Za-z]+")
_WEBHOOK_SECRET = re.compile(r"whsec_[0-9A-Za-z+/=_-]+")
_OPAQUE = re.compile(r"[0-9A-Za-z._~+=-]{32,}")
_UUID = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
_HAS_LETTER_AND_DIGIT = re.compile(r"(?=.*[A-Za-z])(?=.*[0-9])")
SHORTEST_HINTED = 16  # characters after the prefix; fewer is no credential of ours

# Escapes as werkzeug's request log does: \x01, \n, … and the backslash itself.
_CONTROL = str.maketrans({c: rf"\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0xA0)]})
_CONTROL[ord("\\")] = r"\\"


def _masked(match: re.Match[str]) -> str:
    token = match.group(0)
    prefix = token[: token.index("_", len("tenzo_")) + 1]
    if len(token) - len(prefix) < SHORTEST_HINTED:
        return prefix + "[redacted]"
    return hint(token)


def redact_credentials(text: str) -> str:
    """``text`` with every API key and admin token masked to its hint and every
    ``whsec_`` secret to ``whsec_[redacted]``; unchanged when it holds none."""
    if "tenzo_" in text:
        text = _CREDENTIAL.sub(_masked, text)
    if "whsec_" in text:
        text = _WEBHOOK_SECRET.sub("whsec_[redacted]", text)
    return text


def _redact_segment(segment: str) -> str:
    segment = redact_credentials(segment)
    if (
        _OPAQUE.fullmatch(segment)
        and _HAS_LETTER_AND_DIGIT.match(segment)
        and not _UUID.fullmatch(segment)
    ):
        return "[redacted]"
    return segment


def redact_path(target: str) -> str:
    """A request target as it may be logged: without its query string, percent-decoded,
    control characters escaped, credentials and other secret-looking segments masked."""
    path = unquote(target.split("?", 1)[0], errors="replace").translate(_CONTROL)
    return "/".join(_redact_segment(segment) for segment in path.split("/"))


class RedactCredentials(logging.Filter):
    """A logging filter that passes every record's message through redact_credentials."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_credentials(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
