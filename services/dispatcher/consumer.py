"""The dispatcher process: consumes the broker, keeps the projection, runs deliveries.

One consumer thread owns the broker connection (kombu channels are not thread-safe):
it receives ``interview.completed`` messages and relayed domain events, applies the
events to the projection, hands deliveries to the worker pool, and acknowledges a
message only when its delivery has ended and the outcome is stored. The same code
runs on RabbitMQ and on the embedded ``filesystem://`` broker.

Interview messages are taken in batches: whatever has arrived (up to ``BATCH``) is
validated one by one, then one projection query reads what all of them need. If the
event store cannot answer, the batch stays here, unacknowledged, and is tried again.

Duplicates: a message for a delivery already running here joins it (and is acked
with it). On RabbitMQ several dispatchers may run, so a fresh (not redelivered)
message whose delivery exists and is still pending belongs to whichever dispatcher
holds the original message: it is acked without sending. A *redelivered* message
(its dispatcher died) resumes the delivery. The embedded broker serves one
dispatcher and loses unacked messages when that process dies, so there the
dispatcher resumes every pending delivery from the event store when it starts.
Whatever else leaves a delivery pending with nobody working on it, the sweeper
(sweeper.py, on a thread of its own) finds it once it is stalled, and it is resumed.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from contextlib import ExitStack
from functools import partial
from typing import Any
from uuid import UUID

from kombu import Connection, Consumer, Producer

from contracts.broker import (
    DEAD_LETTER_QUEUE,
    DEFERRED_HEADER,
    DEFERRED_QUEUE,
    ERROR_HEADER,
    INTERVIEW_COMPLETED,
    INTERVIEWS_QUEUE,
    PROJECTION_QUEUE,
    InvalidMessage,
    parse_interview_completed,
)
from domain.actors import DISPATCHER
from domain.application import DeveloperTools
from domain.deliveries import TEST_EVENT_TYPE, Delivery, delivery_id
from services.dispatcher.committer import TRANSIENT_ERRORS, Committer
from services.dispatcher.delivery_runner import DeliveryJob, DeliveryRunner, is_fresh
from services.dispatcher.fair_pool import FairPool
from services.dispatcher.payloads import interview_completed_body
from services.dispatcher.projection import DispatchProjection, InterviewContext, InterviewRef
from services.dispatcher.sender import DeliveryPolicy, WebhookSender
from services.dispatcher.sweeper import StalledDeliveries
from services.infrastructure import metrics
from services.infrastructure.broker import broker_connection, broker_display
from services.infrastructure.topology import declare_topology, is_rabbitmq
from services.relay.relay import Backoff
from services.settings import Settings

log = logging.getLogger("tenzo.dispatcher")

POLL_SECONDS = 0.05
HOUSEKEEPING_SECONDS = 1.0
PROJECTION_PREFETCH = 100
BATCH = 100  # interview messages read before their projection rows are read at once
# Not 0: py-amqp spins on a frame that is only partly there when the socket does not wait.
READ_AHEAD_SECONDS = 0.001
DEFER_AFTER = 5  # deliveries held for one slow organization before more are set aside
WORK_EVENT_TYPES = {"DeliveryScheduled", "DeliveryRedeliveryRequested"}


def delivery_policy(settings: Settings) -> DeliveryPolicy:
    return DeliveryPolicy(
        timeout=settings.webhook_timeout,
        allow_private_networks=settings.webhook_allow_private_networks,
        ca_bundle=settings.webhook_ca_bundle,
    )


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tenzo-devtools")
    except PackageNotFoundError:
        return "0"


class Dispatcher:
    """``run(stop)`` consumes until ``stop`` is set, reconnecting after broker failures."""

    def __init__(
        self,
        settings: Settings,
        tools: DeveloperTools,
        drain_seconds: float = 10.0,
        defer_seconds: float = 30.0,
    ):
        self.settings = settings
        self.drain_seconds = drain_seconds  # for attempts in progress when stopping
        self.defer_seconds = defer_seconds  # how long a slow organization's surplus waits
        self.tools = tools
        self.sender = WebhookSender(delivery_policy(settings))
        self.projection = DispatchProjection(tools)
        self.committer = Committer(tools)
        self.pool = FairPool(settings.dispatcher_workers, settings.dispatcher_per_org_concurrency)
        schedule = settings.retry_schedule
        self.runner = DeliveryRunner(
            tools,
            self.projection,
            self.sender,
            self.committer,
            self.pool,
            schedule,
            package_version(),
            on_done=self._job_done,
        )
        self.stalled = StalledDeliveries(tools.recorder, self.runner.load, schedule)
        self.sweep_seconds = min(max(schedule.stalled_after / 3, 0.5), 10.0)
        self._found_stalled: queue.SimpleQueue[tuple[UUID, UUID]] = queue.SimpleQueue()
        # Touched by the consumer thread only, except _finished (a thread-safe queue).
        self._in_flight: dict[UUID, DeliveryJob] = {}
        self._arrived: list[tuple[dict[str, Any], DeliveryJob]] = []
        # Test events and redeliveries for a delivery whose run here has ended (stored)
        # but is not settled yet: each starts once that run is settled.
        self._after: dict[UUID, list[DeliveryJob]] = {}
        self._finished: queue.SimpleQueue[tuple[DeliveryJob, str | None]] = queue.SimpleQueue()
        self._aside: Connection | None = None
        self._next_housekeeping = 0.0
        self.exclusive = False  # set when connected: the embedded broker has one consumer
        self.ready = threading.Event()  # set once consuming (tests, `tenzo serve`)

    # -- lifecycle -----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        backoff = Backoff()
        sweeper = threading.Thread(
            target=self._sweep, args=(stop,), name="tenzo-sweeper", daemon=True
        )
        try:
            self._start_projection()
            sweeper.start()
            while not stop.is_set():
                try:
                    with broker_connection(self.settings.broker_url) as connection:
                        connection.ensure_connection(max_retries=1, timeout=5)
                        self._consume(connection, stop, backoff)
                except Exception as error:  # noqa: BLE001 - reconnect after any failure
                    if stop.is_set():
                        break
                    delay = backoff.next()
                    log.warning(
                        "dispatcher: %s: %s; reconnecting in %.1fs",
                        type(error).__name__,
                        error,
                        delay,
                    )
                    stop.wait(delay)
        finally:
            if sweeper.is_alive():
                sweeper.join(timeout=self.sweep_seconds + 5)
            self.close()

    def close(self) -> None:
        self.pool.shutdown(timeout=self.drain_seconds)
        self.committer.close()
        self.sender.close()
        if self._aside is not None:
            self._aside.release()

    def _start_projection(self) -> None:
        """Fill the projection from the event store the first time (queue bindings made
        later than the first events would otherwise leave it empty)."""
        if self.projection.position() == 0 and self.tools.recorder.max_notification_id():
            log.info("dispatcher: building the projection from the event store")
            self.projection.rebuild()

    def _consume(self, connection: Connection, stop: threading.Event, backoff: Backoff) -> None:
        queues = declare_topology(connection)
        self.exclusive = not is_rabbitmq(connection)
        channel = connection.default_channel
        prefetch = self.settings.dispatcher_prefetch
        with ExitStack() as consumers:
            # basic.qos applies to the consumers started after it on the channel: each
            # consumer sets its prefetch and starts before the next one sets its own.
            consumers.enter_context(
                Consumer(
                    channel,
                    [queues[INTERVIEWS_QUEUE]],
                    on_message=self._on_interview,
                    prefetch_count=prefetch,
                )
            )
            consumers.enter_context(
                Consumer(
                    channel,
                    [queues[PROJECTION_QUEUE]],
                    on_message=self._on_domain_event,
                    # The embedded transport has one prefetch per channel: keep the larger.
                    prefetch_count=prefetch if self.exclusive else PROJECTION_PREFETCH,
                )
            )
            backoff.reset()
            log.info("dispatcher: consuming from %s", broker_display(self.settings.broker_url))
            if self.exclusive:
                self._resume_pending()
            self.ready.set()
            while not stop.is_set():
                self._settle_finished()
                self._resume_stalled()
                self._housekeeping()
                try:
                    connection.drain_events(timeout=POLL_SECONDS)
                    for _ in range(BATCH):  # what else has arrived already, boundedly
                        if len(self._arrived) >= BATCH or stop.is_set():
                            break
                        connection.drain_events(timeout=READ_AHEAD_SECONDS)
                except TimeoutError:
                    connection.heartbeat_check()
                except Exception:
                    self._arrived.clear()  # the broker gives them back after the reconnect
                    raise
                self._start_arrived()
        self._settle_finished()

    # -- messages ------------------------------------------------------------------------

    def _on_interview(self, message: Any) -> None:
        raw = _raw_body(message)
        try:
            parsed = parse_interview_completed(raw)
        except InvalidMessage as invalid:
            self._dead_letter(message, raw, str(invalid), INTERVIEWS_QUEUE)
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
        if job.delivery_id not in self._in_flight and self._should_defer(org_id):
            self._publish_aside(
                message,
                raw,
                DEFERRED_QUEUE,
                {DEFERRED_HEADER: "slow endpoint"},
                expiration=self.defer_seconds,
            )
            message.ack()
            metrics.DEFERRED.inc()
            return
        self._arrived.append((parsed, job))

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

    def _start_arrived(self) -> None:
        """Start the deliveries of the interview messages just read, with one projection
        query for all of them. If the event store does not answer, they stay here and
        are tried again (not requeued: a requeued message comes back flagged
        redelivered, which would let it resume a delivery another dispatcher holds)."""
        arrived, self._arrived = self._arrived, []
        self._arrived = self._start_batch(arrived)

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
                self._dead_letter(
                    message, _raw_body(message), f"cannot read: {error}", INTERVIEWS_QUEUE
                )
                message.ack()
            return []
        for (parsed, job), ref, context in zip(arrived, refs, contexts, strict=True):
            job.create = partial(self._new_interview_delivery, parsed, job, ref, context, read_at)
            self._claim(job)
        return []

    def _new_interview_delivery(
        self,
        parsed: dict[str, Any],
        job: DeliveryJob,
        ref: InterviewRef,
        context: InterviewContext,
        read_at: float,
    ) -> Delivery | None:
        """A new Delivery for the message; None when that delivery exists already (a
        duplicate message: the runner continues the stored one) or when the
        organization's webhook is not enabled (then nothing is sent or recorded).
        What the batch read is used only while fresh: a job that waited (a slow
        organization) reads it again."""
        if not is_fresh(read_at):
            [context], read_at = self.projection.interview_contexts([ref]), time.monotonic()
        if context.delivered:
            return None
        target = context.target
        if target is None or not target.enabled:
            log.info("no enabled webhook for organization %s: not delivered", parsed["org_id"])
            metrics.DELIVERIES.labels("not_sent").inc()
            return None
        job.remember_target(target, read_at)  # the first attempt needs not read it again
        return Delivery(
            org_id=parsed["org_id"],
            event_id=parsed["event_id"],
            event_type=INTERVIEW_COMPLETED,
            url=target.url,
            body=interview_completed_body(parsed, context.candidate, context.job),
            actor=DISPATCHER,
        )

    def _on_domain_event(self, message: Any) -> None:
        raw = _raw_body(message)
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
            self._dead_letter(message, raw, f"cannot apply: {error}", PROJECTION_QUEUE)
            message.ack()
            return
        if applied:
            log.debug("projection: applied %s v%s", item.get("type"), item.get("version"))
        if self._is_work(item):
            delivery = self.runner.load(UUID(item["aggregate_id"]))
            if delivery is not None:
                job = DeliveryJob(
                    delivery.id, delivery.org_id, [message], owned=True, delivery=delivery
                )
                self._claim(job)
                return
        message.ack()

    @staticmethod
    def _is_work(item: dict[str, Any]) -> bool:
        """Relayed events that ask for sending: a test event, a redelivery."""
        if item.get("type") not in WORK_EVENT_TYPES:
            return False
        data = item.get("data") or {}
        return item["type"] != "DeliveryScheduled" or data.get("event_type") == TEST_EVENT_TYPE

    def _claim(self, job: DeliveryJob) -> None:
        running = self._in_flight.get(job.delivery_id)
        if running is not None:
            if job.owned:  # a test event or a redelivery: a new run after this one
                self._after.setdefault(job.delivery_id, []).append(job)
                return
            running.messages.extend(job.messages)  # acked when that run ends
            return
        self._in_flight[job.delivery_id] = job
        metrics.DELIVERIES_IN_FLIGHT.set(len(self._in_flight))
        self.runner.start(job)

    def _resume_pending(self) -> None:
        """Continue every pending delivery (embedded broker: lost messages are not
        redelivered, but the event store knows what is unfinished)."""
        for pending_id in self.stalled.pending_ids():
            if pending_id in self._in_flight:
                continue
            delivery = self.runner.load(pending_id)
            if delivery is not None and delivery.status == "pending":
                log.info("resuming delivery %s", pending_id)
                reason = "the dispatcher restarted (embedded broker)"
                self._claim(DeliveryJob(delivery.id, delivery.org_id, resume_reason=reason))

    # -- stalled deliveries --------------------------------------------------------------

    def _sweep(self, stop: threading.Event) -> None:
        """Find stalled deliveries every ``sweep_seconds`` (its own thread: the first
        pass reads the whole log); the consumer thread resumes them."""
        while not stop.wait(self.sweep_seconds):
            try:
                for delivery in self.stalled.find():
                    self._found_stalled.put((delivery.id, delivery.org_id))
            except Exception as error:  # noqa: BLE001 - tried again at the next sweep
                log.warning("sweeper: %s: %s", type(error).__name__, error)

    def _resume_stalled(self) -> None:
        after = self.settings.retry_schedule.stalled_after
        while True:
            try:
                found, org_id = self._found_stalled.get_nowait()
            except queue.Empty:
                return
            if found in self._in_flight:
                continue  # running here (and recording nothing for that long: it is slow)
            reason = f"stalled: nothing recorded for {after:g} s after its next step was due"
            self._claim(DeliveryJob(found, org_id, resume_reason=reason, only_if_stalled=True))

    # -- acknowledging -------------------------------------------------------------------

    def _job_done(self, job: DeliveryJob, error: str | None) -> None:
        """Called on a worker thread; the consumer thread acks (channels are not shared)."""
        self._finished.put((job, error))

    def _settle_finished(self) -> None:
        while True:
            try:
                job, error = self._finished.get_nowait()
            except queue.Empty:
                break
            self._in_flight.pop(job.delivery_id, None)
            for message in job.messages:
                try:
                    if error is not None:
                        raw = _raw_body(message)
                        self._dead_letter(message, raw, error, INTERVIEWS_QUEUE)
                    message.ack()
                except Exception as failure:  # noqa: BLE001 - the broker will redeliver
                    log.warning("could not acknowledge a message: %s", failure)
            for waiting in self._after.pop(job.delivery_id, []):
                waiting.delivery = None  # read again: the run that ended changed it
                self._claim(waiting)
        metrics.DELIVERIES_IN_FLIGHT.set(len(self._in_flight))

    def _dead_letter(self, message: Any, raw: bytes, reason: str, source: str) -> None:
        """Publish the message as received to tenzo.dead-letter with its reason; the
        caller then acks the original (SPEC 6). Confirmed on RabbitMQ."""
        self._publish_aside(
            message,
            raw,
            DEAD_LETTER_QUEUE,
            {
                ERROR_HEADER: reason[:1000],
                "x-tenzo-queue": source,
                "x-tenzo-routing-key": message.delivery_info.get("routing_key") or "",
            },
        )
        metrics.DEAD_LETTERED.labels(source).inc()
        log.warning("dead-lettered a message from %s: %s", source, reason)

    def _publish_aside(
        self,
        message: Any,
        raw: bytes,
        queue: str,
        headers: dict[str, Any],
        expiration: float | None = None,
    ) -> None:
        """Publish a received message, unchanged but for added headers, to ``queue``
        (confirmed by RabbitMQ before the caller acks the original)."""
        if self._aside is None:
            self._aside = broker_connection(self.settings.broker_url, confirm_publish=True)
        Producer(self._aside.default_channel).publish(
            raw,
            exchange="",
            routing_key=queue,
            headers=dict(message.headers or {}) | headers,
            content_type=message.content_type or "application/octet-stream",
            content_encoding=message.content_encoding or "binary",
            delivery_mode=2,
            expiration=expiration,
            retry=True,
            retry_policy={"max_retries": 3},
        )

    # -- housekeeping --------------------------------------------------------------------

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now < self._next_housekeeping:
            return
        self._next_housekeeping = now + HOUSEKEEPING_SECONDS
        try:
            self.projection.flush_position()
            self.projection.measure_lag()
        except TRANSIENT_ERRORS as error:
            log.warning("projection: event store unavailable (%s)", error)


TRANSIENT_ERRORS_PAUSE = 1.0


def _raw_body(message: Any) -> bytes:
    """The body bytes as published (py-amqp decodes bodies that name an encoding)."""
    body = message.body
    if isinstance(body, str):
        return body.encode(message.content_encoding or "utf-8")
    return bytes(body)
