"""What the applications need from the outside, as protocols (implemented in services/)."""

from __future__ import annotations

from typing import Any, Protocol
from uuid import UUID


class Catalog(Protocol):
    """Per-organization indexes of aggregates and of the event history, kept current
    from the event store's notification log."""

    def catch_up(self) -> None:
        """Apply every event recorded so far (read-your-writes for this process)."""

    def aggregate_ids(
        self,
        org_id: UUID,
        aggregate_type: str,
        *,
        limit: int,
        before: int | None = None,
        after: int | None = None,
        parent_id: UUID | None = None,
        status: str | None = None,
    ) -> list[tuple[int, UUID]]:
        """(position, id) of an organization's aggregates of a type, newest first
        (or oldest first when ``after`` is given)."""
        ...

    def events(
        self,
        org_id: UUID,
        *,
        after: int,
        limit: int,
        type: str | None = None,
        aggregate_id: UUID | None = None,
    ) -> list[dict[str, Any]]:
        """The organization's event history, oldest first, as audit items."""
        ...
