"""The deliveries in progress in this dispatcher, and acknowledging their messages.

A message is acknowledged only when its delivery has ended here and the outcome is
stored (SPEC 6): workers hand finished jobs back (``FinishedJobs``), and the consumer
thread, which alone touches the broker channel, acks their messages (after
dead-lettering them if the job ended in an internal error). A duplicate message for a
delivery running here joins that run and is acked with it; a test event or a
redelivery for it waits until that run is settled, then starts.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Iterator
from uuid import UUID

from contracts.broker import INTERVIEWS_QUEUE
from services.dispatcher import metrics
from services.dispatcher.dead_letters import DeadLetters, raw_body
from services.dispatcher.delivery_runner import DeliveryJob, DeliveryRunner

log = logging.getLogger("tenzo.dispatcher")


class FinishedJobs:
    """Jobs that ended on a worker thread, waiting for the consumer thread (thread-safe)."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[DeliveryJob, str | None]] = queue.SimpleQueue()

    def put(self, job: DeliveryJob, error: str | None) -> None:
        """The runner's ``on_done``: ``error`` dead-letters the job's messages."""
        self._queue.put((job, error))

    def __bool__(self) -> bool:
        """Whether any job has finished and waits to be settled."""
        return not self._queue.empty()

    def take(self) -> Iterator[tuple[DeliveryJob, str | None]]:
        """Every job finished so far (without waiting)."""
        while True:
            try:
                yield self._queue.get_nowait()
            except queue.Empty:
                return


class InFlight:
    """Claims deliveries for this process and settles them; consumer thread only."""

    def __init__(self, runner: DeliveryRunner, finished: FinishedJobs, dead_letters: DeadLetters):
        self.runner = runner
        self.finished = finished
        self.dead_letters = dead_letters
        self._jobs: dict[UUID, DeliveryJob] = {}
        # Test events and redeliveries for a delivery whose run here has ended (stored)
        # but is not settled yet: each starts once that run is settled.
        self._after: dict[UUID, list[DeliveryJob]] = {}

    def __contains__(self, delivery_id: object) -> bool:
        return delivery_id in self._jobs

    def __len__(self) -> int:
        return len(self._jobs)

    def claim(self, job: DeliveryJob) -> None:
        """Run the job here, unless its delivery already runs here: then its messages
        are acked with that run, or (a test event, a redelivery) it runs after it."""
        running = self._jobs.get(job.delivery_id)
        if running is not None:
            if job.owned:  # a test event or a redelivery: a new run after this one
                self._after.setdefault(job.delivery_id, []).append(job)
                return
            running.messages.extend(job.messages)  # acked when that run ends
            return
        self._jobs[job.delivery_id] = job
        metrics.DELIVERIES_IN_FLIGHT.set(len(self._jobs))
        self.runner.start(job)

    def settle_finished(self) -> None:
        """Ack the messages of every job finished since the last call."""
        for job, error in self.finished.take():
            self._jobs.pop(job.delivery_id, None)
            for message in job.messages:
                try:
                    if error is not None:
                        raw = raw_body(message)
                        self.dead_letters.dead_letter(message, raw, error, INTERVIEWS_QUEUE)
                    message.ack()
                except Exception as failure:  # noqa: BLE001 - the broker will redeliver
                    log.warning("could not acknowledge a message: %s", failure)
            for waiting in self._after.pop(job.delivery_id, []):
                waiting.delivery = None  # read again: the run that ended changed it
                self.claim(waiting)
        metrics.DELIVERIES_IN_FLIGHT.set(len(self._jobs))
