"""What the applications need from the outside, as protocols (implemented in services/)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

if TYPE_CHECKING:
    from domain.endpoint_health import EndpointHealth


class Catalog(Protocol):
    """Per-organization indexes of aggregates and of the event history, kept current
    from the event store's notification log."""

    def note_writes(self, marks: Mapping[UUID, int]) -> None:
        """Record each organization's newest written position (a save's), before the
        write returns to its client."""

    def wait_for_writes(self, org_id: UUID) -> None:
        """Return once the indexes hold every write of the organization noted so far
        (read-your-writes), without waiting for other organizations' newer events;
        raise domain.errors.CatalogBehind when that takes too long."""

    def close(self) -> None:
        """Stop keeping the indexes current (the application is closing)."""

    def organization_ids(self) -> list[UUID]:
        """Every organization's id, oldest first."""
        ...

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

    def head(self, org_id: UUID) -> tuple[int, str]:
        """(position, hash) of the last item of the organization's hash-chained history
        ((0, 64 zeros) before its first)."""
        ...

    def events(
        self,
        org_id: UUID,
        *,
        after: int,
        limit: int,
        type: str | None = None,
        aggregate_id: UUID | None = None,
        types: Sequence[str] | None = None,
        before: int | None = None,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """The organization's event history between ``after`` and ``before``, oldest
        first (or newest first), of one ``type`` or any of ``types``, as audit items."""
        ...

    def webhook_health(self, org_id: UUID, now: datetime) -> EndpointHealth:
        """The organization's endpoint health as of ``now`` (from a projection)."""
        ...


class ManyAggregates(Protocol):
    """Reads many aggregates at once (a page of a list), in a few queries."""

    def get_many(self, aggregate_ids: Sequence[UUID]) -> dict[UUID, Any]:
        """The aggregates found, by id (missing ids are left out)."""
        ...


class PersonalData(Protocol):
    """Where personal data is kept encrypted under a key of each person's own."""

    def destroy(self, subject: str) -> None:
        """Destroy the key of this subject (a candidate's id): everything sealed under it
        becomes unreadable, for good. Idempotent."""
        ...
