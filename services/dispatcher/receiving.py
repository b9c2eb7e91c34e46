"""Receiving messages: each broker message becomes a delivery job, or is set aside.

Interview messages are taken in batches: each is validated as it arrives, then one
projection query reads what up to ``BATCH`` of them need. While the pool has a round of
work ready to start, arriving messages wait here, unacknowledged, and are read together
when it runs low: under load the broker sends one message per ack, and reading each at
once made one query per message. If the event store cannot answer, the batch stays
here, unacknowledged, and is tried again.
A message that is not valid is dead-lettered (services/dispatcher/dead_letters.py).

Relayed domain events are applied to the projection; a test event or a redelivery
among them also starts a delivery job.

Who may resume a pending delivery (``DeliveryJob.resume_reason``): on RabbitMQ several
dispatchers may run, so a fresh (not redelivered) message whose delivery exists and
is still pending belongs to whichever dispatcher holds the original message: it is
acked without sending. A *redelivered* message (its dispatcher died) resumes the
delivery. The embedded broker serves one dispatcher (``exclusive``): there every
message may.
"""

from __future__ import annotations

import json
import logging
import time
from functools import partial
from typing import Any
from uuid import UUID

from contracts.broker import (
    INTERVIEWS_QUEUE,
    PROJECTION_QUEUE,
    InvalidMessage,
    parse_interview_completed,
)
from domain.deliveries import TEST_EVENT_TYPE, delivery_id
from services.dispatcher.committer import TRANSIENT_ERRORS
from services.dispatcher.dead_letters import DeadLetters, raw_body
from services.dispatcher.delivery_runner import DeliveryJob, DeliveryRunner
from services.dispatcher.fair_pool import FairPool
from services.dispatcher.in_flight import InFlight
from services.dispatcher.new_deliveries import NewDeliveries
from services.dispatcher.projection import DispatchProjection, InterviewRef

log = logging.getLogger("tenzo.dispatcher")

BATCH = 100  # interview messages read before their projection rows are read at once
DEFER_AFTER = 5  # deliveries held for one slow organization before more are set aside
WORK_EVENT_TYPES = {"DeliveryScheduled", "DeliveryRedeliveryRequested"}
TRANSIENT_ERRORS_PAUSE = 1.0


class MessageReceiver:
    """The consumer callbacks (``on_interview``, ``on_domain_event``); consumer thread only."""

    def __init__(
        self,
        projection: DispatchProjection,
        runner: DeliveryRunner,
        pool: FairPool,
        in_flight: InFlight,
        new_deliveries: NewDeliveries,
        dead_letters: DeadLetters,
        defer_seconds: float = 30.0,
    ):
        self.projection = projection
        self.runner = runner
        self.pool = pool
        self.in_flight = in_flight
        self.new_deliveries = new_deliveries
        self.dead_letters = dead_letters
        self.defer_seconds = defer_seconds  # how long a slow organization's surplus waits
        self.exclusive = False  # the embedded broker has one consumer (see connected)
        self._arrived: list[tuple[dict[str, Any], DeliveryJob]] = []

    def connected(self, exclusive: bool) -> None:
        """Called on each (re)connection: ``exclusive`` when no other dispatcher can run.
        What an earlier connection read, set aside or not, is the broker's again (it
        gives back what was not acked)."""
        self.exclusive = exclusive
        self._arrived.clear()
        self.dead_letters.forget_deferred()

    # -- interview messages --------------------------------------------------------------

    def on_interview(self, message: Any) -> None:
        raw = raw_body(message)
        try:
            parsed = parse_interview_completed(raw)
        except InvalidMessage as invalid:
            self.dead_letters.dead_letter(message, raw, str(invalid), INTERVIEWS_QUEUE)
            message.ack()
            return
        org_id: UUID = parsed["org_id"]
        if message.delivery_info.get("redelivered"):
            resume_reason: str | None = (
                "redelivered by the broker: its dispatcher stopped or lost its connection"
            )
        elif self.exclusive:
            resume_reason = "no other dispatcher runs on the embedded broker"
        else:
            resume_reason = None  # whoever holds the original message runs it
        job = DeliveryJob(
            delivery_id=delivery_id(org_id, parsed["event_id"]),
            org_id=org_id,
            messages=[message],
            resume_reason=resume_reason,
            record_before_sending=self.exclusive,
        )
        if job.delivery_id not in self.in_flight and self._should_defer(org_id):
            self.dead_letters.defer(message, raw, self.defer_seconds)  # acked when confirmed
            return
        self._arrived.append((parsed, job))

    def arrived(self) -> int:
        """Interview messages read and not started yet."""
        return len(self._arrived)

    def _should_defer(self, org_id: UUID) -> bool:
        """Whether to set a new message aside: its organization's endpoint is not
        answering and already has DEFER_AFTER deliveries held here. Held messages count
        against the prefetch window; without this, enough hanging endpoints would fill
        it and stop every other organization's deliveries. RabbitMQ only (it brings
        them back after a TTL); the embedded broker serves one small process."""
        if self.exclusive:
            return False
        held = self.pool.backlog(org_id)  # 0 unless the organization is slow
        if held:  # and those of this batch, not handed to the pool yet
            held += sum(1 for _, job in self._arrived if job.org_id == org_id)
        return held >= DEFER_AFTER

    def start_arrived(self) -> None:
        """Start the deliveries of up to ``BATCH`` of the interview messages read, oldest
        first, with one projection query for all of them, unless the pool has a round of
        work ready (they are read just before they run). If the event store does not
        answer, they stay here and are tried again (not requeued: a requeued message
        comes back flagged redelivered, which would let it resume a delivery another
        dispatcher holds)."""
        if self.pool.has_a_round_ready():
            return
        arrived, self._arrived = self._arrived[:BATCH], self._arrived[BATCH:]
        self._arrived = self._start_batch(arrived) + self._arrived

    def _start_batch(
        self, arrived: list[tuple[dict[str, Any], DeliveryJob]]
    ) -> list[tuple[dict[str, Any], DeliveryJob]]:
        """Start what it can; returns the messages to try again."""
        if not arrived:
            return []
        refs = [
            InterviewRef(
                parsed["org_id"],
                parsed["data"]["candidate_id"],
                parsed["data"]["job_id"],
                job.delivery_id,
            )
            for parsed, job in arrived
        ]
        read_at = time.monotonic()
        try:
            contexts = self.projection.interview_contexts(refs)
        except TRANSIENT_ERRORS as error:
            log.warning("projection: event store unavailable (%s); the messages wait", error)
            time.sleep(TRANSIENT_ERRORS_PAUSE)
            return arrived
        except Exception as error:  # noqa: BLE001 - one message's data the query refuses
            if len(arrived) > 1:  # find it: each message on its own
                return [waiting for one in arrived for waiting in self._start_batch([one])]
            log.exception("projection: cannot read what a message needs")
            for message in arrived[0][1].messages:
                self.dead_letters.dead_letter(
                    message, raw_body(message), f"cannot read: {error}", INTERVIEWS_QUEUE
                )
                message.ack()
            return []
        for (parsed, job), ref, context in zip(arrived, refs, contexts, strict=True):
            job.create = partial(
                self.new_deliveries.for_interview, parsed, job, ref, context, read_at
            )
            self.in_flight.claim(job)
        return []

    # -- relayed domain events -----------------------------------------------------------

    def on_domain_event(self, message: Any) -> None:
        raw = raw_body(message)
        try:
            item = json.loads(raw)
            applied = self.projection.apply(item)
        except TRANSIENT_ERRORS as error:
            log.warning("projection: event store unavailable (%s); message requeued", error)
            time.sleep(TRANSIENT_ERRORS_PAUSE)
            message.requeue()
            return
        except Exception as error:  # noqa: BLE001 - a message we cannot apply is set aside
            log.exception("projection: cannot apply a relayed event")
            self.dead_letters.dead_letter(message, raw, f"cannot apply: {error}", PROJECTION_QUEUE)
            message.ack()
            return
        if applied:
            log.debug("projection: applied %s v%s", item.get("type"), item.get("version"))
        if is_work(item):
            delivery = self.runner.load(UUID(item["aggregate_id"]))
            if delivery is not None:
                # A recovery redelivers many at once: its messages are acked at once, so
                # that they never fill the prefetch window other organizations' messages
                # need; the pending deliveries themselves are the record (a dispatcher
                # that stops leaves them to the sweeper, or to _resume_pending).
                recovery = bool((item.get("data") or {}).get("recovery"))
                held = [] if recovery else [message]
                job = DeliveryJob(delivery.id, delivery.org_id, held, owned=True, delivery=delivery)
                self.in_flight.claim(job)
                if not recovery:
                    return
        message.ack()


def is_work(item: dict[str, Any]) -> bool:
    """Relayed events that ask for sending: a test event, a redelivery."""
    if item.get("type") not in WORK_EVENT_TYPES:
        return False
    data = item.get("data") or {}
    return item["type"] != "DeliveryScheduled" or data.get("event_type") == TEST_EVENT_TYPE
