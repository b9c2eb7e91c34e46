"""Checking the event store against the history's hash chain (`tenzo audit verify --store`).

The chain was linked when each event entered the history (catalog_follower.py) and is
kept in ``tenzo_audit``. This check reads the event store and the chained items side by
side, in position order, in batches, and reports every position where they disagree:

- a stored event whose audit item, linked to the recorded ``previous_hash``, no longer
  has the recorded ``hash`` (its stored content was changed), or that cannot be decoded
  at all (its bytes were changed);
- a chained item whose event is gone from the store (deleted), and a stored event the
  chain never saw (inserted behind the catalog's back);
- a chained item that does not match its own hash or does not follow the organization's
  item before it (``tenzo_audit`` itself was edited), and an organization's recorded
  head that is not its last item (items after it were removed).

Only positions the catalog has reached are checked (newer events are not chained yet).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from eventsourcing.application import Application

from contracts.audit import audit_item
from contracts.audit_chain import GENESIS, item_hash, link, unlinked
from services.infrastructure.catalog import TRACKING_NAME
from services.infrastructure.personal_data import sealed_decoder
from services.infrastructure.positions import CATALOG_TABLE, Position
from services.infrastructure.storage import SqlTables

BATCH = 1000


@dataclass(frozen=True)
class Mismatch:
    """One position where the event store and the chain disagree."""

    position: int
    problem: str

    def __str__(self) -> str:
        return f"position {self.position}: {self.problem}"


@dataclass
class StoreCheck:
    """What ``check_store`` found: the events checked, the catalog position they reach,
    whether ``head`` (if asked for) was found, and every mismatch."""

    checked: int = 0
    reached: int = 0
    head_found: bool | None = None
    mismatches: list[Mismatch] | None = None


def check_store(app: Application[Any], head: str | None = None) -> StoreCheck:
    """Recompute the chain from the event store and compare it with the recorded one."""
    tables = SqlTables(app)
    reached = Position(app, CATALOG_TABLE, TRACKING_NAME).read()
    result = StoreCheck(reached=reached, mismatches=[], head_found=None if head is None else False)
    mismatches: list[Mismatch] = []
    last_of_org: dict[str, str] = {}
    for position, event, row in _side_by_side(app, tables, reached):
        result.checked += event is not None
        if row is None:
            mismatches.append(Mismatch(position, "stored event is not in the chain (inserted)"))
            continue
        recorded = json.loads(row["item"])
        org_id = row["org_id"]
        if item_hash(recorded) != recorded.get("hash"):
            mismatches.append(Mismatch(position, "chained item does not match its own hash"))
        if recorded.get("previous_hash") != last_of_org.get(org_id, GENESIS):
            mismatches.append(
                Mismatch(position, "chained item does not follow its organization's last one")
            )
        last_of_org[org_id] = recorded.get("hash")
        if head is not None and recorded.get("hash") == head:
            result.head_found = True
        what = (
            f"{recorded.get('type')} v{recorded.get('version')} of {recorded.get('aggregate_id')}"
        )
        if event is None:
            mismatches.append(Mismatch(position, f"{what} was deleted from the event store"))
        elif isinstance(event, Exception):
            mismatches.append(Mismatch(position, f"{what} cannot be decoded: its bytes changed"))
        else:
            digest, _ = link(unlinked(audit_item(event, position)), recorded["previous_hash"])
            if digest != recorded.get("hash"):
                mismatches.append(Mismatch(position, f"{what} no longer matches its hash"))
    for row in tables.read("SELECT org_id, position, hash FROM tenzo_audit_heads"):
        if row["org_id"] in last_of_org and last_of_org[row["org_id"]] != row["hash"]:
            mismatches.append(
                Mismatch(int(row["position"]), "the organization's head is missing from the chain")
            )
    result.mismatches = sorted(mismatches, key=lambda m: m.position)
    return result


def _side_by_side(
    app: Application[Any], tables: SqlTables, reached: int
) -> Iterator[tuple[int, Any, Any]]:
    """(position, the stored event or the exception decoding it raised or None, the
    chained row or None) for every position up to ``reached`` found in either."""
    decode = sealed_decoder(app)
    start = 1
    while start <= reached:
        stop = min(start + BATCH - 1, reached)
        notifications = app.recorder.select_notifications(start=start, limit=BATCH, stop=stop)
        if len(notifications) == BATCH:
            stop = notifications[-1].id
        rows = tables.read(
            "SELECT position, org_id, item FROM tenzo_audit "
            "WHERE position >= :start AND position <= :stop",
            {"start": start, "stop": stop},
        )
        stored = {n.id: n for n in notifications}
        chained = {int(row["position"]): row for row in rows}
        for position in sorted(stored.keys() | chained.keys()):
            notification = stored.get(position)
            event: Any = None
            if notification is not None:
                try:
                    event = decode(notification)
                except Exception as error:  # noqa: BLE001 - reported, not raised
                    event = error
            yield position, event, chained.get(position)
        start = stop + 1
