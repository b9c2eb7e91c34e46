"""Why a presented API key or admin token is refused, in words the caller can act on.

SPEC 5.3 asks each 401 to say which mistake it is, as Stripe's errors do, so the seed's
troubleshooting questions ("complete key with the prefix? expired or revoked?") are
answered by the API itself. The rule that keeps this from helping anyone guess keys:

- What can be told from the presented text alone (the wrong kind of credential, not a
  Tenzo prefix, truncated, characters a key never has, a failed checksum) is said in
  full: anyone can compute it offline, it needs no look-up.
- A well-formed key that is not stored is "unknown", in one fixed sentence that echoes
  nothing: every such key, a random one included, gets exactly the same answer.
- Only the holder of a real key can learn that it expired or was revoked (and when):
  the key's whole text, 178 random bits, is the proof, so this tells a guesser nothing.

Messages show at most a credential's hint (its prefix and last four characters).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

from domain import credentials
from domain.errors import Unauthorized

MISSING = "missing"
WRONG_KIND = "wrong_kind"
NOT_OURS = "not_ours"
MALFORMED = "malformed"
UNKNOWN = "unknown"
EXPIRED = "expired"
REVOKED = "revoked"

# Shorter than this after the prefix, a presented text's last four characters are too
# much of it to show.
HINT_MIN_BODY = 8


class Kind(NamedTuple):
    """A kind of credential and where it is used."""

    name: str
    prefix: str
    used_for: str


API_KEY = Kind("API key", credentials.API_KEY_PREFIX, "the Public API (/v1)")
ADMIN_TOKEN = Kind(
    "admin token", credentials.ADMIN_TOKEN_PREFIX, "the admin API (/admin/v1) and the dashboard"
)
KINDS = (API_KEY, ADMIN_TOKEN)
COMPLETE_LENGTH = credentials.RANDOM_LENGTH + credentials.CHECKSUM_LENGTH


def _article(kind: Kind) -> str:
    return f"an {kind.name}" if kind.name[0] in "aeiouAEIOU" else f"a {kind.name}"


def _shown(presented: str, kind: Kind) -> str:
    """`` <hint>`` of a presented text, to follow "The API key"; nothing when the text
    is so short that its last four characters would be much of it."""
    body = presented[len(kind.prefix) :] if presented.startswith(kind.prefix) else ""
    return f" {kind.prefix}…{presented[-4:]}" if len(body) >= HINT_MIN_BODY else ""


def malformed(presented: str, kind: Kind) -> Unauthorized | None:
    """The refusal of a presented text that cannot be ``kind`` of credential, or None
    when it is well-formed (then only a look-up can tell more)."""
    if not presented:
        return Unauthorized(
            f"No {kind.name} was given: it starts with {kind.prefix}.", reason=MISSING
        )
    for other in KINDS:
        if other != kind and presented.startswith(other.prefix):
            return Unauthorized(
                f"That is {_article(other)} ({other.prefix}…), which is for {other.used_for}; "
                f"use {_article(kind)} ({kind.prefix}…) for {kind.used_for}.",
                reason=WRONG_KIND,
            )
    if not presented.startswith(kind.prefix):
        return Unauthorized(
            f"That is not a Tenzo {kind.name}: {kind.name}s start with {kind.prefix} "
            f"(copy the whole {kind.name}, prefix included, without quotes).",
            reason=NOT_OURS,
        )
    body = presented[len(kind.prefix) :]
    shown = _shown(presented, kind)
    complete = len(kind.prefix) + COMPLETE_LENGTH
    if len(body) < COMPLETE_LENGTH:
        return Unauthorized(
            f"The {kind.name}{shown} is truncated: it has {len(presented)} characters, a "
            f"complete one has {complete}. Copy the whole {kind.name}.",
            reason=MALFORMED,
        )
    if len(body) > COMPLETE_LENGTH:
        return Unauthorized(
            f"The {kind.name}{shown} is too long: it has {len(presented)} characters, a "
            f"complete one has {complete}. Something was pasted with it.",
            reason=MALFORMED,
        )
    if not all(ch in credentials.BASE62 for ch in body):
        return Unauthorized(
            f"The {kind.name}{shown} has characters {_article(kind)} never has (after "
            f"{kind.prefix} there are only letters and digits). Copy it again.",
            reason=MALFORMED,
        )
    if not credentials.is_well_formed(presented, kind.prefix):
        return Unauthorized(
            f"The {kind.name}{shown} fails its checksum: a character was mistyped or "
            f"changed. Copy it again.",
            reason=MALFORMED,
        )
    return None


def unknown(kind: Kind) -> Unauthorized:
    """The one answer for every well-formed credential that is not stored."""
    return Unauthorized(
        f"This {kind.name} is not known here: it was never issued by this deployment (or "
        f"it belongs to another one). Check that it is the {kind.name} of this "
        f"organization and deployment, or create a new one.",
        reason=UNKNOWN,
    )


def expired(kind: Kind, hint: str, at: datetime) -> Unauthorized:
    return Unauthorized(
        f"The {kind.name} {hint} expired at {_instant(at)}. Create a new {kind.name} and "
        f"use it instead.",
        reason=EXPIRED,
    )


def revoked(kind: Kind, hint: str, at: datetime | None) -> Unauthorized:
    when = f" at {_instant(at)}" if at is not None else ""
    return Unauthorized(
        f"The {kind.name} {hint} was revoked{when}, for good. Use another {kind.name}, or "
        f"create a new one.",
        reason=REVOKED,
    )


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
