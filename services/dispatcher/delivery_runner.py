"""Runs one delivery's attempts: create or resume the Delivery, wait, send, record, repeat.

A delivery advances in steps on the FairPool; a step never sleeps through a retry
delay (it asks the pool to call it again later), so waiting deliveries hold no thread.
Every attempt is recorded as ``DeliveryAttempted`` together with the outcome
(``DeliverySucceeded``/``DeliveryFailed``) in one save through the group Committer,
before the next attempt starts. When the job ends, ``on_done`` is called so that the
consumer can acknowledge the job's messages: only after the outcome is stored.

A new interview delivery is recorded with its first attempt: ``DeliveryScheduled``,
``DeliveryAttempted`` (and the outcome) in one save, a transaction less per delivery
(docs/benchmarks.md). Before sending, the dispatcher's projection query also says
whether the delivery exists already, so a duplicate message does not send again; two
dispatchers holding duplicates of one message at the same moment may both send (same
``X-Webhook-Id``), and the second save fails, so one delivery is recorded. On the
embedded broker, whose unacked messages die with the process, ``DeliveryScheduled`` is
saved before the first attempt instead, so that a restart finds the delivery pending.

When the next attempt is due, and whether a series has one left, is decided by the
``RetryPolicy`` (services/dispatcher/retry.py) alone; the runner only schedules it.

Resuming after a crash: the Delivery in the event store says how many attempts the
current series has had and when the last one ended, so the next attempt is numbered
after them and starts once the rest of its delay has passed. A dispatcher that takes
over a pending delivery it did not start (a redelivered message, a restart on the
embedded broker, the sweeper's stalled deliveries) first records ``DeliveryResumed``:
the history then says an attempt may have been sent unrecorded, and, saved with
optimistic concurrency, the event is the claim that one dispatcher wins.

Conflicts: a save refused because the store holds other events for the delivery
(ambiguous commits are resolved by the Committer, so these are another writer's) is
read, not guessed at. The delivery is loaded again; an attempt this job POSTed that is
not recorded there is recorded on top of it; if another dispatcher recorded that
attempt or a later step, it works on the delivery (it wrote moments ago) and this job
ends. Should that one die too, the sweeper (services/dispatcher/sweeper.py) resumes
the delivery once it is stalled: nothing is left pending for good.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from contracts.webhook_payload import webhook_headers
from domain.actors import DISPATCHER
from domain.application import DeveloperTools
from domain.deliveries import Delivery, RetryRule
from services.dispatcher import metrics
from services.dispatcher.committer import TRANSIENT_ERRORS, Committer, CommitterClosed
from services.dispatcher.fair_pool import FairPool
from services.dispatcher.projection import DispatchProjection, WebhookTarget
from services.dispatcher.sender import AttemptResult, WebhookSender

log = logging.getLogger("tenzo.dispatcher")

TRANSIENT_RETRY_SECONDS = 1.0
# What the dispatcher read of a webhook is used as is for this long (creating the
# delivery, its first attempt). Longer than a busy dispatcher's queue (prefetch 1,000 at
# a few hundred deliveries/s), so only a slow organization's jobs read it again.
FRESH_SECONDS = 5.0


def is_fresh(read_at: float) -> bool:
    """Whether what was read at ``read_at`` (monotonic) may still be used as is."""
    return time.monotonic() - read_at < FRESH_SECONDS


@dataclass
class DeliveryJob:
    """One delivery in progress in this process, and the broker messages it answers.

    ``create`` builds a new Delivery (interview messages). ``owned``: this job runs the
    delivery (it created it, claimed it, or was asked to by a test event or a
    redelivery), so what is stored is simply continued after a transient error.
    Otherwise a pending delivery found in the event store is continued only when
    ``resume_reason`` says why this job may take it over (see Dispatcher), and then
    claimed with ``DeliveryResumed``; ``only_if_stalled`` (the sweeper) claims it only
    while nobody works on it. ``record_before_sending`` stores a new delivery's
    ``DeliveryScheduled`` before its first attempt; otherwise it goes into the save of
    the first attempt (see the module's docstring).
    """

    delivery_id: UUID
    org_id: UUID
    messages: list[Any] = field(default_factory=list)
    create: Callable[[], Delivery | None] | None = None
    owned: bool = False
    resume_reason: str | None = None
    only_if_stalled: bool = False
    record_before_sending: bool = True
    delivery: Delivery | None = None
    target: WebhookTarget | None = None
    target_read_at: float = 0.0

    def remember_target(self, target: WebhookTarget, read_at: float) -> None:
        """Keep the webhook as read at ``read_at`` (monotonic) for the first attempt."""
        self.target, self.target_read_at = target, read_at

    def fresh_target(self) -> WebhookTarget | None:
        """The webhook as read moments ago (when the delivery was created), once."""
        target, self.target = self.target, None
        if target is not None and is_fresh(self.target_read_at):
            return target
        return None


class DeliveryRunner:
    def __init__(
        self,
        application: DeveloperTools,
        projection: DispatchProjection,
        sender: WebhookSender,
        committer: Committer,
        pool: FairPool,
        retry: RetryRule,
        version: str,
        on_done: Callable[[DeliveryJob, str | None], None],
    ):
        self.application = application
        self.projection = projection
        self.sender = sender
        self.committer = committer
        self.pool = pool
        self.retry = retry
        self.version = version
        self.on_done = on_done

    def start(self, job: DeliveryJob) -> None:
        self.pool.submit(job.org_id, partial(self._step, job))

    # -- one step ----------------------------------------------------------------------

    def _step(self, job: DeliveryJob, work: Callable[[], None] | None = None) -> None:
        """Run ``work`` (by default: advance the delivery), handling what it raises."""
        try:
            (work or partial(self._advance, job))()
        except Exception as error:  # noqa: BLE001 - each kind is handled below
            self._handle(job, error)

    def _handle(self, job: DeliveryJob, error: BaseException) -> None:
        if isinstance(error, TRANSIENT_ERRORS):
            log.warning("delivery %s: event store unavailable (%s)", job.delivery_id, error)
            job.delivery = None  # read it again: what was recorded is unknown
            self.pool.call_later(TRANSIENT_RETRY_SECONDS, job.org_id, partial(self._step, job))
        elif isinstance(error, CommitterClosed):
            log.info("delivery %s left unfinished: stopping", job.delivery_id)
        else:
            log.error("delivery %s failed unexpectedly", job.delivery_id, exc_info=error)
            self.on_done(job, f"internal error: {type(error).__name__}: {error}")

    def _advance(self, job: DeliveryJob) -> None:
        if job.delivery is None:
            job.delivery = self._load_or_create(job)
            if job.delivery is None:
                self.on_done(job, None)
                return
        delivery = job.delivery
        if delivery.status != "pending":
            self.on_done(job, None)
            return
        made = delivery.attempts_in_series
        if self.retry.attempts_over(made):  # attempts made, outcome not stored before a crash
            self._end(job, failure=f"{made} attempts failed")
            return
        wait = (delivery.next_attempt_due(self.retry) - datetime.now(UTC)).total_seconds()
        if wait > 0.005:
            self.pool.call_later(wait, job.org_id, partial(self._step, job))
            return
        target = job.fresh_target() or self.projection.webhook(delivery.org_id)
        if target is None or not target.enabled:
            self._end(job, failure="webhook disabled or deleted: not sent")
            return
        self._attempt(job, delivery, target)

    def _attempt(self, job: DeliveryJob, delivery: Delivery, target: WebhookTarget) -> None:
        number = delivery.next_attempt_number
        body = delivery.body.encode("utf-8")
        # Every attempt (first, retry, redelivery, test event) is signed here: with the
        # previous secret too while its overlap lasts, by the application's clock.
        headers = webhook_headers(
            event_id=delivery.event_id,
            event_type=delivery.event_type,
            attempt=number,
            timestamp=int(time.time()),
            body=body,
            secret=target.secret,
            version=self.version,
            previous_secret=target.previous_secret_at(self.application.clock()),
        )
        self.pool.sending()
        result = self.sender.send(delivery.url, body, headers)
        self._observe(job.org_id, result)
        self._record(delivery, result)
        # The thread goes back to the pool now; the committer settles the save (with
        # the other deliveries of its batch) and carries on in _attempt_saved.
        self.committer.save_then(
            delivery, partial(self._attempt_saved, job, delivery, result, number)
        )

    def _attempt_saved(
        self,
        job: DeliveryJob,
        delivery: Delivery,
        result: AttemptResult,
        number: int,
        error: BaseException | None,
    ) -> None:
        """On the committer thread, once the attempt's save is settled: quick steps
        only (the committer's next batch waits); anything else goes to the pool."""
        try:
            if error is None:
                job.owned = True
                self._attempt_stored(job, delivery)
            elif isinstance(error, IntegrityError):
                retry = partial(self._record_on_top, job, delivery, result, number)
                self.pool.submit(job.org_id, partial(self._step, job, retry))
            else:
                self._handle(job, error)
        except Exception as failure:  # noqa: BLE001 - as _step: the job ends, never hangs
            self._handle(job, failure)

    def _record_on_top(
        self, job: DeliveryJob, delivery: Delivery, result: AttemptResult, number: int
    ) -> None:
        """Another writer recorded something first: record this attempt on top of what
        is stored, unless that writer recorded attempt ``number`` itself."""
        while True:
            stored = self.load(delivery.id)
            if not _may_record(stored, number, delivery.series):
                log.info(
                    "delivery %s: attempt %d was also made by another dispatcher, which "
                    "carries on with it",
                    delivery.id,
                    number,
                )
                self.on_done(job, None)
                return
            assert stored is not None
            job.delivery = delivery = stored
            self._record(delivery, result)
            if self._save(job, delivery):
                self._attempt_stored(job, delivery)
                return

    def _attempt_stored(self, job: DeliveryJob, delivery: Delivery) -> None:
        if delivery.status != "pending":
            metrics.DELIVERIES.labels(delivery.status).inc()
            self.on_done(job, None)
            return
        self.pool.submit(job.org_id, partial(self._step, job))  # the next attempt, after its delay

    def _record(self, delivery: Delivery, result: AttemptResult) -> None:
        """The attempt and, when it settles the delivery, its outcome (not saved yet)."""
        record_attempt(delivery, result)
        if result.succeeded:
            delivery.succeed(actor=DISPATCHER)
        elif self.retry.attempts_over(delivery.attempts_in_series):
            reason = f"{delivery.attempts_in_series} attempts failed; last: {result.error}"
            log.warning("delivery %s (organization %s): %s", delivery.id, delivery.org_id, reason)
            delivery.fail(reason=reason, actor=DISPATCHER)

    def _end(self, job: DeliveryJob, failure: str) -> None:
        delivery = job.delivery
        assert delivery is not None
        delivery.fail(reason=failure, actor=DISPATCHER)
        if self._save(job, delivery):
            metrics.DELIVERIES.labels("failed").inc()
            self.on_done(job, None)
        else:
            self._carried_on_elsewhere(job)

    def _save(self, job: DeliveryJob, delivery: Delivery) -> bool:
        """Store the delivery's new events; False when the store holds other events for
        it (another dispatcher's: the Committer tells an ambiguous commit of ours apart)."""
        try:
            self.committer.save(delivery)
        except IntegrityError:
            return False
        job.owned = True
        return True

    def _carried_on_elsewhere(self, job: DeliveryJob) -> None:
        """After a conflict with no attempt of ours to record: what is stored is newer
        than what this job knew, written by a dispatcher that is working on it."""
        log.info("delivery %s: another dispatcher recorded a later step first", job.delivery_id)
        self.on_done(job, None)

    def _observe(self, org_id: UUID, result: AttemptResult) -> None:
        seconds = result.duration_ms / 1000
        metrics.ATTEMPT_LATENCY.labels("success" if result.succeeded else "failure").observe(
            seconds
        )
        # Busy is not broken: any answer, however late, lets the organization run more at
        # once (but 429 and 503, backpressure, halve it); no answer (timeout, connection
        # failure) halves what it may run; an attempt never sent waits for nothing.
        if result.reply == "answered":
            self.pool.answered(org_id, backpressure=result.backpressure)
        elif result.reply == "no_answer":
            self.pool.unanswered(org_id)
        else:
            self.pool.not_sent()

    # -- creating and resuming ---------------------------------------------------------

    def _load_or_create(self, job: DeliveryJob) -> Delivery | None:
        if job.owned:  # this job runs it: go on from what is stored
            return self.load(job.delivery_id)
        created = job.create() if job.create is not None else None
        if created is not None:
            if not job.record_before_sending:
                return created  # DeliveryScheduled is saved with the first attempt
            if self._save(job, created):
                return created
            # it exists already: a duplicate or redelivered message
        existing = self.load(job.delivery_id)
        if existing is None or existing.status != "pending":
            return existing  # not scheduled (no enabled webhook), or ended: nothing to do
        if job.resume_reason is None:
            return None  # a dispatcher holding the message that runs it is alive
        return self._claim(job, existing, job.resume_reason)

    def _claim(self, job: DeliveryJob, delivery: Delivery, reason: str) -> Delivery | None:
        """Take over a pending delivery with ``DeliveryResumed``; None when another
        dispatcher recorded something of it meanwhile (it is working on it)."""
        if job.only_if_stalled and not delivery.is_stalled(self.retry, datetime.now(UTC)):
            return None
        delivery.resume(reason=f"{reason}; {UNRECORDED_ATTEMPT_NOTE}", actor=DISPATCHER)
        if not self._save(job, delivery):
            log.info("delivery %s: resumed by another dispatcher first", delivery.id)
            return None
        log.info("delivery %s resumed (%s)", delivery.id, reason)
        metrics.DELIVERIES_RESUMED.labels("stalled" if job.only_if_stalled else "handover").inc()
        return delivery

    def load(self, delivery_id: UUID) -> Delivery | None:
        """The delivery as stored, or None when there is none."""
        try:
            found: object = self.application.repository.get(delivery_id)
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, Delivery) else None


def record_attempt(delivery: Delivery, result: AttemptResult) -> None:
    """Record what one attempt did on the delivery, as the dispatcher (not saved yet)."""
    delivery.record_attempt(
        started_at=result.started_at,
        status_code=result.status_code,
        duration_ms=result.duration_ms,
        error=result.error,
        response_excerpt=result.response_excerpt,
        actor=DISPATCHER,
        cause=result.cause,
        request_headers=result.request_headers,
        response_headers=result.response_headers,
    )


UNRECORDED_ATTEMPT_NOTE = (
    "an attempt after the last recorded one may have been sent without being recorded"
)


def _may_record(stored: Delivery | None, number: int, series: int) -> bool:
    """Whether attempt ``number`` of ``series``, made by this job, can still be recorded
    on the stored delivery: it is pending in that series and no one recorded it."""
    return (
        stored is not None
        and stored.status == "pending"
        and stored.series == series
        and stored.next_attempt_number == number
    )
