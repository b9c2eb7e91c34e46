"""Minting and checking admin tokens and API keys (SPEC 4).

A credential is ``<prefix><30 random base62 chars><6 base62 chars of CRC32>``, as
GitHub's tokens are: 178 bits from the CSPRNG, and a checksum so a typo or a truncated
paste is refused before any storage look-up and scanners can recognise leaked keys.
Only the SHA-256 of a credential is ever stored: it has far too much entropy for a
slow hash to add anything.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import zlib
from dataclasses import dataclass
from uuid import UUID, uuid5

ADMIN_TOKEN_PREFIX = "tenzo_admin_"
API_KEY_PREFIX = "tenzo_pk_"
PREFIXES = (ADMIN_TOKEN_PREFIX, API_KEY_PREFIX)

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_LENGTH = 30
CHECKSUM_LENGTH = 6

# Namespace for ids derived from credential hashes (uuid5 of the hash).
CREDENTIAL_NAMESPACE = UUID("0b7e2d62-6f0a-4f57-9a8f-3c1d7a1e5f21")


def to_base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, remainder = divmod(number, 62)
        digits.append(BASE62[remainder])
    return "".join(reversed(digits))


def checksum(body: str) -> str:
    return to_base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


@dataclass(frozen=True)
class MintedCredential:
    """A freshly minted credential: the plaintext is shown once, the hash is kept."""

    plaintext: str
    hash: str
    hint: str


def mint(prefix: str) -> MintedCredential:
    """Mint a new credential with the given prefix."""
    body = "".join(secrets.choice(BASE62) for _ in range(RANDOM_LENGTH))
    plaintext = f"{prefix}{body}{checksum(prefix + body)}"
    return MintedCredential(
        plaintext=plaintext, hash=hash_credential(plaintext), hint=hint(plaintext)
    )


def is_well_formed(candidate: str, prefix: str) -> bool:
    """True when the candidate has the prefix, the length, the alphabet and a valid checksum."""
    if not candidate.startswith(prefix):
        return False
    rest = candidate[len(prefix) :]
    if len(rest) != RANDOM_LENGTH + CHECKSUM_LENGTH or not all(ch in BASE62 for ch in rest):
        return False
    body, check = rest[:RANDOM_LENGTH], rest[RANDOM_LENGTH:]
    return hmac.compare_digest(checksum(prefix + body), check)


def hash_credential(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def hint(plaintext: str) -> str:
    """The prefix and the last four characters, e.g. ``tenzo_pk_…a1B2``."""
    prefix = ADMIN_TOKEN_PREFIX if plaintext.startswith(ADMIN_TOKEN_PREFIX) else API_KEY_PREFIX
    return f"{prefix}…{plaintext[-4:]}"


def credential_id(credential_hash: str) -> UUID:
    """The aggregate id under which a credential with this hash is stored."""
    return uuid5(CREDENTIAL_NAMESPACE, credential_hash)


def same_hash(stored: str, presented: str) -> bool:
    return hmac.compare_digest(stored.encode(), presented.encode())
