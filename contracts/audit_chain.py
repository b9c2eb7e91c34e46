"""The event history's hash chain (SPEC 12): standard library only, so auditors can copy
this file and verify an exported history anywhere (docs/audit.md).

Each organization's history is one chain. An item's ``hash`` is the lowercase hex
SHA-256 of its canonical encoding: the item without ``hash`` (``previous_hash``
included), with every ``data`` field named in ``sealed`` left out, as JSON with sorted
keys, no whitespace and ASCII escapes (``json.dumps(..., sort_keys=True,
separators=(",", ":"))``), encoded as UTF-8. ``previous_hash`` is the hash of the
organization's item before it, or ``GENESIS`` (64 zeros) for its first.

``sealed`` (present on items that carry personal data) maps each personal field to a
digest of its value keyed with a key of that person's own: the chain covers the digest,
never the value, so destroying the key (erasure) leaves the chain intact.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
PREVIOUS = "previous_hash"


def canonical(item: dict[str, Any]) -> bytes:
    """The bytes an item's hash is taken over (see the module's docstring)."""
    body = {key: value for key, value in item.items() if key != "hash"}
    sealed = body.get("sealed") or {}
    if sealed and isinstance(body.get("data"), dict):
        body["data"] = {k: v for k, v in body["data"].items() if k not in sealed}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def item_hash(item: dict[str, Any]) -> str:
    """The hash an item should carry."""
    return hashlib.sha256(canonical(item)).hexdigest()


def unlinked(item: dict[str, Any]) -> tuple[str, str]:
    """An item without ``previous_hash``, ``hash`` or sealed data fields, encoded
    canonically in two halves: the keys sorting before ``previous_hash`` and those after.
    ``link`` completes it once the previous hash is known (the expensive encoding is
    done ahead, off the chain's sequential path)."""
    before = {key: value for key, value in item.items() if key < PREVIOUS}
    after = {key: value for key, value in item.items() if key > PREVIOUS}
    encode = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode
    return encode(before)[:-1], encode(after)[1:]


def link(parts: tuple[str, str], previous_hash: str) -> tuple[str, str]:
    """(hash, the item's JSON with ``previous_hash`` and ``hash``) of an ``unlinked``
    item that follows ``previous_hash``."""
    before, after = parts
    text = f'{before}{"," if before != "{" else ""}"{PREVIOUS}":"{previous_hash}"'
    text += f",{after}" if after != "}" else "}"
    digest = hashlib.sha256(text.encode()).hexdigest()
    return digest, f'{text[:-1]},"hash":"{digest}"}}'


@dataclass(frozen=True)
class Verdict:
    """What a verification found: ``ok``, the items read, the chain's last position and
    hash, and for a failure the position of the first wrong item and what is wrong."""

    ok: bool
    count: int
    head_position: int | None = None
    head_hash: str | None = None
    position: int | None = None
    problem: str | None = None

    def __str__(self) -> str:
        if self.ok:
            return (
                f"OK: {self.count} items, head position {self.head_position}, hash {self.head_hash}"
            )
        return f"FAILED at position {self.position}: {self.problem}"


def verify(lines: Iterable[str], head: str | None = None, *, partial: bool = False) -> Verdict:
    """Verify an exported history (one JSON item a line, oldest first): every item's
    hash matches its content and follows the item before it, the first follows
    ``GENESIS`` (unless ``partial``: an export ``after`` a position), and ``head`` (an
    earlier head's hash), if given, is one of its items. Names the first item altered,
    removed (before it), inserted or reordered."""
    items: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            return Verdict(False, len(items), problem=f"line {number} is not JSON")
        if not isinstance(item, dict):
            return Verdict(False, len(items), problem=f"line {number} is not a JSON object")
        items.append(item)
    index = {item.get("hash"): n for n, item in enumerate(items)}
    previous = items[0].get(PREVIOUS) if partial and items else GENESIS
    for n, item in enumerate(items):
        position = item.get("position")
        if item_hash(item) != item.get("hash"):
            following = items[n + 1] if n + 1 < len(items) else None
            if following is not None and following.get(PREVIOUS) == previous:
                return Verdict(False, n, position=position, problem="inserted: not in the chain")
            return Verdict(False, n, position=position, problem="altered: content ≠ its hash")
        if item.get(PREVIOUS) != previous:
            linked = index.get(item.get(PREVIOUS))
            if linked is None:
                problem = "removed: the item it follows is missing before it"
            elif linked > n:
                where = items[linked].get("position")
                problem = f"reordered: it follows position {where}, which comes later"
            else:  # the items between the one it follows and itself are not chained
                position = items[linked + 1].get("position")
                return Verdict(False, n, position=position, problem="inserted: not in the chain")
            return Verdict(False, n, position=position, problem=problem)
        previous = item["hash"]
    last = items[-1] if items else {}
    if head is not None and head != GENESIS and head not in index:
        return Verdict(
            False, len(items), problem=f"head {head} is not in this history: it was rewritten"
        )
    return Verdict(True, len(items), last.get("position"), last.get("hash", GENESIS))
