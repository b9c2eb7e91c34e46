"""Group commit: the pending events of many concurrent deliveries in one event-store save.

Each save is a transaction; on PostgreSQL one save per delivery record caps the
dispatcher at a few hundred records a second, while fifty deliveries per save reach
thousands (docs/benchmarks.md). Worker threads hand their aggregates to ``save()``,
which encodes their new events (transcoding, compression, encryption: the CPU part)
in the calling thread and blocks, or to ``save_then()``, which returns at once and has
the committer call a continuation with the outcome (the dispatcher's attempts: the
thread goes back to the pool); one committer thread writes everything waiting in
one ``recorder.insert_events(...)`` (what ``Application.save`` does after encoding).
If that batch fails (one delivery's version conflict fails the whole transaction),
each delivery is saved on its own, so only the conflicting one sees the error.
A database that is down is waited for: transient errors are retried with backoff.

A save whose outcome is unknown (the connection was lost during COMMIT) is resolved by
reading the store, never by guessing: saving again either works (it was not stored)
or conflicts; a conflict whose stored events are byte for byte ours (the ciphertext
has a random nonce, so no other writer can have produced it) means our first commit
went through, and the save succeeded. Only a conflict with other events is reported. A
store that cannot be reached while that is read is waited for like any other outage:
every error of a save reaches the thread waiting for it (or its continuation), none
ends the committer's. At most ``max_outstanding`` saves without a waiting thread are
queued at once: a worker queuing more waits, as it did for its own save, so a slow or
unreachable store holds back the attempts that would be sent meanwhile.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from eventsourcing.persistence import IntegrityError, InterfaceError, OperationalError

from domain.application import DeveloperTools
from services.infrastructure.catalog import Catalog
from services.infrastructure.personal_data import sealing_encoder

log = logging.getLogger("tenzo.committer")

TRANSIENT_ERRORS = (OperationalError, InterfaceError)


class CommitterClosed(Exception):
    """Nothing is saved any more: the dispatcher is stopping."""


Settled = Callable[[BaseException | None], None]


@dataclass
class _Pending:
    events: list[Any]  # StoredEvent
    org_ids: set[Any]  # the organizations of the saved aggregates
    then: Settled | None = None  # called on the committer thread once settled
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def settle(self, error: BaseException | None = None) -> None:
        self.error = error
        if self.then is None:
            self.done.set()
            return
        try:
            self.then(error)
        except Exception:  # noqa: BLE001 - the committer goes on whatever a caller does
            log.exception("a save's continuation failed")


class Committer:
    """Saves aggregates for many threads, batching whatever is waiting into one save."""

    def __init__(
        self,
        application: DeveloperTools,
        max_batch: int = 200,
        longest_backoff: float = 5.0,
        max_outstanding: int = 128,
    ):
        self.application = application
        self.max_batch = max_batch
        self._outstanding = threading.BoundedSemaphore(max_outstanding)
        self.longest_backoff = longest_backoff
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="tenzo-committer", daemon=True)
        self._thread.start()
        self._encode = sealing_encoder(application)
        self._insert = application.recorder.insert_events
        self._catalog = application.catalog
        # This process's catalog follower then decodes none of these events again.
        follower = self._catalog.follower if isinstance(self._catalog, Catalog) else None
        self._hand_over = follower.hand_over if follower is not None else None
        self._select = application.recorder.select_events
        self.batches = 0  # transactions
        self.saved = 0  # saves (one per save() call)
        self.seconds = 0.0  # spent in transactions
        self._reported = time.monotonic()

    def save(self, *aggregates: Any) -> None:
        """Store the aggregates' pending events; return once stored.

        Raises IntegrityError when another writer recorded a conflicting version first
        (the aggregate is then stale: load it again), or the error that made the save
        fail for good.
        """
        pending = self._enqueue(aggregates, None)
        if pending is None:
            return
        pending.done.wait()
        if pending.error is not None:
            raise pending.error

    def save_then(self, aggregate: Any, then: Settled) -> None:
        """Store the aggregate's pending events without waiting for them: ``then(error)``
        is called on the committer thread once the save is settled (``error`` is None
        when stored, else what ``save`` would have raised), or at once on this thread
        when there is nothing to store. ``then`` must be quick and must not save: the
        next batch waits for it. Waits while ``max_outstanding`` such saves are queued;
        raises CommitterClosed when stopping."""
        self._outstanding.acquire()
        try:
            pending = self._enqueue((aggregate,), partial(self._settled, then))
        except BaseException:
            self._outstanding.release()
            raise
        if pending is None:
            self._settled(then, None)

    def _settled(self, then: Settled, error: BaseException | None) -> None:
        self._outstanding.release()
        then(error)

    def _enqueue(self, aggregates: tuple[Any, ...], then: Settled | None) -> _Pending | None:
        """Encode the aggregates' new events on the calling thread and queue them."""
        events = [event for aggregate in aggregates for event in aggregate.collect_events()]
        if not events:
            return None
        encoded = [self._encode(event) for event in events]
        if self._hand_over is not None:
            self._hand_over(encoded)
        stored = [stored for stored, _ in encoded]
        pending = _Pending(stored, {a.org_id for a in aggregates}, then)
        with self._lock:
            if self._stopping.is_set():
                raise CommitterClosed("the dispatcher is stopping")
            self._queue.put(pending)
        return pending

    def close(self) -> None:
        """Save what is waiting, then stop the committer thread."""
        with self._lock:
            self._stopping.set()
            self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(item)
            self._commit(batch)

    def _commit(self, batch: list[_Pending]) -> None:
        if len(batch) > 1:
            try:
                newest = self._timed_insert([e for pending in batch for e in pending.events])
            except Exception as error:  # noqa: BLE001 - each is saved alone below
                log.debug("group save of %d failed (%s); saving one by one", len(batch), error)
            else:
                self._count(len(batch))
                self._note_writes(batch, newest)
                for pending in batch:
                    pending.settle()
                return
        for pending in batch:
            self._commit_one(pending)

    def _commit_one(self, pending: _Pending) -> None:
        backoff = 0.1
        while True:
            try:
                newest = self._insert_or_find(pending.events)
            except IntegrityError as conflict:
                pending.settle(conflict)
                return
            except TRANSIENT_ERRORS as error:
                if self._stopping.is_set():
                    pending.settle(error)
                    return
                log.warning("event store unavailable (%s); retrying in %.1fs", error, backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, self.longest_backoff)
            except Exception as error:  # noqa: BLE001 - reported to the waiting thread
                pending.settle(error)
                return
            else:
                self._count(1)
                self._note_writes([pending], newest)
                pending.settle()
                return

    def _insert_or_find(self, stored_events: list[Any]) -> int | None:
        """Insert; return the newest notification id, or None when an earlier commit of
        these very events went through (its reply lost). Raises IntegrityError when the
        store holds other events at their versions, and a transient error when the
        store cannot be reached, inserting or reading: the caller tries again."""
        try:
            return self._timed_insert(stored_events)
        except IntegrityError:
            if not self._stored_already(stored_events):
                raise
        log.info("an earlier commit of %d events had gone through", len(stored_events))
        return None

    def _stored_already(self, stored_events: list[Any]) -> bool:
        """Whether the event store holds exactly these events (a commit reported as
        failed, or never answered, that went through)."""
        by_originator: dict[Any, list[Any]] = {}
        for stored in stored_events:
            by_originator.setdefault(stored.originator_id, []).append(stored)
        for originator_id, ours in by_originator.items():
            versions = [event.originator_version for event in ours]
            found = self._select(originator_id, gt=min(versions) - 1, lte=max(versions))
            if _contents(found) != _contents(ours):
                return False
        return True

    def _timed_insert(self, stored_events: list[Any]) -> int | None:
        """Insert; return the newest notification id of the events inserted."""
        started = time.perf_counter()
        try:
            ids = self._insert(stored_events)
        finally:
            self.seconds += time.perf_counter() - started
        return max(ids) if ids else None

    def _note_writes(self, batch: list[_Pending], newest: int | None) -> None:
        """Tell the catalog each organization's newest position (one transaction for
        the batch), so an admin's next read of deliveries includes these events."""
        if newest is None:
            return
        try:
            self._catalog.note_writes(
                {org_id: newest for pending in batch for org_id in pending.org_ids}
            )
        except Exception:  # noqa: BLE001 - the events are saved; reads only wait less
            log.exception("noting %d saves for the catalog failed", len(batch))

    def _count(self, saves: int) -> None:
        self.batches += 1
        self.saved += saves
        now = time.monotonic()
        if now - self._reported >= 10 and log.isEnabledFor(logging.DEBUG):
            self._reported = now
            log.debug(
                "committer: %d saves in %d transactions, %.1f ms each",
                self.saved,
                self.batches,
                1000 * self.seconds / self.batches,
            )


def _contents(stored_events: Any) -> set[tuple[int, str, bytes]]:
    return {(event.originator_version, event.topic, bytes(event.state)) for event in stored_events}
