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

Resuming after a crash: the Delivery in the event store says how many attempts the
current series has had and when the last one ended, so the next attempt is numbered
after them and starts once the rest of its delay has passed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from contracts.webhook_payload import webhook_headers
from domain.actors import DISPATCHER
from domain.application import DeveloperTools
from domain.deliveries import Delivery
from services import metrics
from services.dispatcher.committer import TRANSIENT_ERRORS, Committer, CommitterClosed
from services.dispatcher.fair_pool import FairPool
from services.dispatcher.projection import DispatchProjection, WebhookTarget
from services.dispatcher.sender import AttemptResult, DeliveryPolicy, WebhookSender

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

    ``create`` builds a new Delivery (interview messages); ``resume`` says whether a
    pending delivery found in the event store is continued here (True unless another
    dispatcher may be running it: see Dispatcher). ``record_before_sending`` stores a
    new delivery's ``DeliveryScheduled`` before its first attempt; otherwise it goes
    into the save of the first attempt (see the module's docstring).
    """

    delivery_id: UUID
    org_id: UUID
    messages: list[Any] = field(default_factory=list)
    create: Callable[[], Delivery | None] | None = None
    resume: bool = True
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
        tools: DeveloperTools,
        projection: DispatchProjection,
        sender: WebhookSender,
        committer: Committer,
        pool: FairPool,
        policy: DeliveryPolicy,
        version: str,
        on_done: Callable[[DeliveryJob, str | None], None],
    ):
        self.tools = tools
        self.projection = projection
        self.sender = sender
        self.committer = committer
        self.pool = pool
        self.policy = policy
        self.version = version
        self.on_done = on_done

    def start(self, job: DeliveryJob) -> None:
        self.pool.submit(job.org_id, partial(self._step, job))

    # -- one step ----------------------------------------------------------------------

    def _step(self, job: DeliveryJob) -> None:
        try:
            self._advance(job)
        except TRANSIENT_ERRORS as error:
            log.warning("delivery %s: event store unavailable (%s)", job.delivery_id, error)
            job.delivery = None  # read it again: what was recorded is unknown
            self.pool.call_later(TRANSIENT_RETRY_SECONDS, job.org_id, partial(self._step, job))
        except CommitterClosed:
            log.info("delivery %s left unfinished: stopping", job.delivery_id)
        except Exception as error:
            log.exception("delivery %s failed unexpectedly", job.delivery_id)
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
        delays = self.policy.retry_delays
        made = delivery.attempts_in_series
        if made >= len(delays):  # attempts made, outcome not stored before a crash
            self._end(job, failure=f"{made} attempts failed")
            return
        wait = self._remaining_delay(delivery, delays[made])
        if wait > 0.005:
            self.pool.call_later(wait, job.org_id, partial(self._step, job))
            return
        target = job.fresh_target() or self.projection.webhook(delivery.org_id)
        if target is None or not target.enabled:
            self._end(job, failure="webhook disabled or deleted: not sent")
            return
        self._attempt(job, delivery, target.secret)

    def _attempt(self, job: DeliveryJob, delivery: Delivery, secret: str | None) -> None:
        number = delivery.next_attempt_number
        body = delivery.body.encode("utf-8")
        headers = webhook_headers(
            event_id=delivery.event_id,
            event_type=delivery.event_type,
            attempt=number,
            timestamp=int(time.time()),
            body=body,
            secret=secret,
            version=self.version,
        )
        result = self.sender.send(delivery.url, body, headers)
        self._observe(job.org_id, result)
        delivery.record_attempt(
            started_at=result.started_at,
            status_code=result.status_code,
            duration_ms=result.duration_ms,
            error=result.error,
            response_excerpt=result.response_excerpt,
            actor=DISPATCHER,
        )
        if result.succeeded:
            delivery.succeed(actor=DISPATCHER)
        elif delivery.attempts_in_series >= len(self.policy.retry_delays):
            reason = f"{delivery.attempts_in_series} attempts failed; last: {result.error}"
            log.warning("delivery %s (organization %s): %s", delivery.id, delivery.org_id, reason)
            delivery.fail(reason=reason, actor=DISPATCHER)
        if not self._save(job, delivery):
            return
        if delivery.status != "pending":
            metrics.DELIVERIES.labels(delivery.status).inc()
            self.on_done(job, None)
            return
        self._advance(job)  # schedules the next attempt after its delay

    def _end(self, job: DeliveryJob, failure: str) -> None:
        delivery = job.delivery
        assert delivery is not None
        delivery.fail(reason=failure, actor=DISPATCHER)
        if self._save(job, delivery):
            metrics.DELIVERIES.labels("failed").inc()
            self.on_done(job, None)

    def _save(self, job: DeliveryJob, delivery: Delivery) -> bool:
        """Store the delivery's new events; False (and the job is done) when another
        dispatcher recorded this step first: it owns the delivery now."""
        try:
            self.committer.save(delivery)
        except IntegrityError:
            log.info("delivery %s advanced by another dispatcher", delivery.id)
            self.on_done(job, None)
            return False
        return True

    def _observe(self, org_id: UUID, result: AttemptResult) -> None:
        seconds = result.duration_ms / 1000
        metrics.ATTEMPT_LATENCY.labels("success" if result.succeeded else "failure").observe(
            seconds
        )
        # No answer in time, or none at all: let this organization use one thread only.
        self.pool.mark_slow(org_id, result.status_code is None or seconds > self.pool.slow_after)

    # -- creating and resuming ---------------------------------------------------------

    def _load_or_create(self, job: DeliveryJob) -> Delivery | None:
        created = job.create() if job.create is not None else None
        if created is not None:
            if not job.record_before_sending:
                return created  # DeliveryScheduled is saved with the first attempt
            try:
                self.committer.save(created)
            except IntegrityError:
                pass  # it exists already: a duplicate or redelivered message
            else:
                return created
        existing = self._load(job.delivery_id)
        if existing is None:
            return None  # not scheduled: the webhook is missing or disabled
        if existing.status == "pending" and not job.resume:
            return None  # another dispatcher holds the message that runs it
        return existing

    def _load(self, delivery_id: UUID) -> Delivery | None:
        try:
            found = self.tools.repository.get(delivery_id)
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, Delivery) else None

    @staticmethod
    def _remaining_delay(delivery: Delivery, delay: float) -> float:
        """Seconds until the next attempt is due: ``delay`` after the previous attempt of
        the series ended, or after the series began (scheduled, or redelivery asked)."""
        since = delivery.last_attempt_ended_at() or delivery.modified_on
        due = since + timedelta(seconds=delay)
        return (due - datetime.now(UTC)).total_seconds()
