"""Cursor paging over the catalog: newest first, opaque cursors, stable under inserts."""

from __future__ import annotations

import base64
import binascii
from uuid import UUID

from domain.errors import InvalidInput
from domain.ports import Catalog

MAX_PAGE_SIZE = 100


def encode_cursor(position: int) -> str:
    """An opaque cursor for "the items older than this position"."""
    return base64.urlsafe_b64encode(f"p{position}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
        if not text.startswith("p") or not text[1:].isdigit():
            raise ValueError(cursor)
        return int(text[1:])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("Not a cursor returned by this API.", field="cursor") from None


def page_of_ids(
    catalog: Catalog,
    org_id: UUID,
    aggregate_type: str,
    limit: int,
    cursor: str | None,
    *,
    parent_id: UUID | None = None,
    status: str | None = None,
) -> tuple[list[UUID], str | None]:
    """Ids of one page, newest first, and the next page's cursor (None on the last).

    Pages are cut at catalog positions, so items created while a client pages through
    land before its first page, never in between."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput(f"Limit must be 1 to {MAX_PAGE_SIZE}.", field="limit")
    before = decode_cursor(cursor) if cursor else None
    catalog.wait_for_writes(org_id)
    rows = catalog.aggregate_ids(
        org_id,
        aggregate_type,
        limit=limit + 1,
        before=before,
        parent_id=parent_id,
        status=status,
    )
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1][0]) if len(rows) > limit else None
    return [aggregate_id for _, aggregate_id in page], next_cursor
