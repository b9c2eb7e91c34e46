"""The hash chain's encoding and the offline verifier (contracts/audit_chain.py)."""

from __future__ import annotations

import json
from pathlib import Path

from contracts.audit_chain import GENESIS, canonical, item_hash, link, unlinked, verify


def item(position: int, **data: object) -> dict:
    return {
        "position": position,
        "id": f"id-{position}",
        "type": "ApiKeyCreated",
        "aggregate_type": "ApiKey",
        "aggregate_id": "a",
        "version": 1,
        "occurred_at": "2026-12-06T01:00:00Z",
        "actor": {"type": "admin_token", "id": "t"},
        "data": {"name": f"key {position}", "ü": 1.5, **data},
    }


def chain(*items: dict) -> list[dict]:
    previous, linked = GENESIS, []
    for each in items:
        digest, text = link(unlinked(each), previous)
        linked.append(json.loads(text))
        previous = digest
    return linked


def lines(items: list[dict]) -> list[str]:
    return [json.dumps(each) for each in items]


HISTORY = chain(*(item(p) for p in (3, 5, 8, 13, 21)))


def test_a_link_is_the_documented_canonical_encoding():
    first, second = HISTORY[:2]
    assert first["previous_hash"] == GENESIS and second["previous_hash"] == first["hash"]
    assert item_hash(first) == first["hash"]
    body = {k: v for k, v in second.items() if k != "hash"}
    assert canonical(second) == json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def test_sealed_fields_are_hashed_by_their_digest_not_their_value():
    sealed = {**item(1), "sealed": {"email": "d1"}}
    (linked,) = chain(sealed)
    shown = {**linked, "data": {**linked["data"], "email": "ada@example.com"}}
    erased = {**linked, "data": {**linked["data"], "email": "[erased]"}}
    assert item_hash(shown) == item_hash(erased) == linked["hash"]
    assert item_hash({**erased, "sealed": {"email": "d2"}}) != linked["hash"]


def test_an_untouched_history_verifies_and_names_its_head():
    verdict = verify(lines(HISTORY))
    assert verdict.ok and verdict.count == 5
    assert (verdict.head_position, verdict.head_hash) == (21, HISTORY[-1]["hash"])
    assert verify(lines(HISTORY), head=HISTORY[2]["hash"]).ok
    assert verify(lines(HISTORY[2:]), partial=True).ok


def test_an_altered_item_is_named():
    altered = [dict(each) for each in HISTORY]
    altered[2] = {**altered[2], "data": {"name": "other"}}
    verdict = verify(lines(altered))
    assert not verdict.ok and verdict.position == 8 and "altered" in verdict.problem


def test_a_removed_item_is_named_by_the_one_after_it():
    verdict = verify(lines(HISTORY[:2] + HISTORY[3:]))
    assert not verdict.ok and verdict.position == 13 and "removed" in verdict.problem
    first_removed = verify(lines(HISTORY[1:]))
    assert not first_removed.ok and first_removed.position == 5


def test_an_inserted_item_is_named_whether_or_not_its_hash_was_forged():
    forged = chain(*(item(p) for p in (3, 5)), item(6, name="forged"))[2]
    verdict = verify(lines([*HISTORY[:2], forged, *HISTORY[2:]]))
    assert not verdict.ok and verdict.position == 6 and "inserted" in verdict.problem
    unforged = {**item(6), "previous_hash": HISTORY[1]["hash"], "hash": "f" * 64}
    verdict = verify(lines([*HISTORY[:2], unforged, *HISTORY[2:]]))
    assert not verdict.ok and verdict.position == 6 and "inserted" in verdict.problem


def test_reordered_items_are_named():
    swapped = [HISTORY[0], HISTORY[2], HISTORY[1], *HISTORY[3:]]
    verdict = verify(lines(swapped))
    assert not verdict.ok and verdict.position == 8 and "reordered" in verdict.problem


def test_a_rewritten_history_does_not_hold_an_earlier_head():
    rewritten = chain(*(item(p) for p in (3, 5)), item(8, name="rewritten"), item(13))
    assert verify(lines(rewritten)).ok
    verdict = verify(lines(rewritten), head=HISTORY[3]["hash"])
    assert not verdict.ok and "rewritten" in verdict.problem


def test_a_line_that_is_not_json_is_named():
    verdict = verify([*lines(HISTORY[:2]), "{not json"])
    assert not verdict.ok and "line 3" in verdict.problem


def documented_verify():
    """The algorithm docs/audit.md shows, run as written."""
    text = (Path(__file__).parents[2] / "docs" / "audit.md").read_text()
    code = text.split("its algorithm, enough to write one in any language:")[1]
    code = code.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 - our own documentation
    return namespace["verify"]


def test_the_documented_algorithm_finds_what_the_verifier_finds():
    documented = documented_verify()
    forged = chain(*(item(p) for p in (3, 5)), item(6, name="forged"))[2]
    cases = {
        "untouched": (HISTORY, (None, "ok")),
        "altered": (
            [*HISTORY[:2], {**HISTORY[2], "data": {"name": "x"}}, *HISTORY[3:]],
            (8, "altered"),
        ),
        "removed": (HISTORY[:2] + HISTORY[3:], (13, "removed before it")),
        "inserted": ([*HISTORY[:2], forged, *HISTORY[2:]], (6, "inserted")),
        "reordered": ([HISTORY[0], HISTORY[2], HISTORY[1], *HISTORY[3:]], (8, "reordered")),
    }
    for name, (items, expected) in cases.items():
        assert documented(lines(items)) == expected, name
        assert verify(lines(items)).position == expected[0], name
