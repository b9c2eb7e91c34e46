"""Reading an aggregate on every request, cheaply and never stale: authentication.

Decoding an aggregate's events (decrypt, decompress, rebuild) costs far more than
reading them. An aggregate at a given version never changes, so a decoded copy can be
kept; what must be read on every request is whether newer events exist. ``get`` does
exactly that: one indexed SELECT for events after the kept version (usually none);
when there are some, they are read and applied to a copy. A change recorded by any
process (a revoked key) therefore holds from the very next read in every process,
with no time window.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from copy import deepcopy
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import Application, project_aggregate
from eventsourcing.domain import Aggregate

from domain.errors import NotFound

A = TypeVar("A", bound=Aggregate)

HasNewerEvents = Callable[[UUID, int], bool]
"""Whether the event store holds events of an aggregate after a version."""


class FastForwardReads:
    """Current aggregates, decoded once per version; returned objects are read-only."""

    def __init__(
        self,
        app: Application[UUID],
        maxsize: int = 10_000,
        has_newer_events: HasNewerEvents | None = None,
    ):
        self.app = app
        self.maxsize = maxsize
        # The composition root may pass a leaner query for its database.
        self.has_newer_events = has_newer_events or self._has_newer_events
        self._kept: OrderedDict[UUID, Aggregate] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, cls: type[A], aggregate_id: UUID) -> A:
        """The aggregate as currently stored (NotFound when there is none of ``cls``)."""
        with self._lock:
            kept = self._kept.get(aggregate_id)
            if kept is not None:
                self._kept.move_to_end(aggregate_id)
        if kept is None:
            aggregate: Any = self._read_all(aggregate_id)
        elif not self.has_newer_events(aggregate_id, kept.version):
            aggregate = kept
        else:
            newer = self.app.events.get(aggregate_id, gt=kept.version)
            aggregate = project_aggregate(deepcopy(kept), newer)
        if not isinstance(aggregate, cls):
            raise NotFound(cls.__name__)
        if aggregate is not kept:
            with self._lock:
                current = self._kept.get(aggregate_id)
                if current is None or current.version < aggregate.version:
                    self._kept[aggregate_id] = aggregate
                    while len(self._kept) > self.maxsize:
                        self._kept.popitem(last=False)
        return aggregate

    def _has_newer_events(self, aggregate_id: UUID, version: int) -> bool:
        return bool(self.app.recorder.select_events(aggregate_id, gt=version, limit=1))

    def _read_all(self, aggregate_id: UUID) -> Any:
        events = list(self.app.events.get(aggregate_id))
        if not events:
            raise NotFound("aggregate")
        return project_aggregate(None, events)
