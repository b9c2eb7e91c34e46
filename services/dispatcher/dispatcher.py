"""The dispatcher process: its lifecycle, its broker connection and its housekeeping.

One consumer thread owns the broker connection (kombu channels are not thread-safe):
it receives ``interview.completed`` messages and relayed domain events
(receiving.py), applies the events to the projection (projection.py), hands
deliveries to the worker pool through the runner (delivery_runner.py), and
acknowledges a message only when its delivery has ended and the outcome is stored
(in_flight.py). The same code runs on RabbitMQ and on the embedded ``filesystem://``
broker. Its parts are built by ``build_dispatcher`` (services/bootstrap.py).

The embedded broker serves one dispatcher and loses unacked messages when that
process dies, so there the dispatcher resumes every pending delivery from the event
store when it starts. Whatever else leaves a delivery pending with nobody working on
it, the sweeper (sweeper.py, on a thread of its own) finds it once it is stalled, and
it is resumed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from uuid import UUID

from kombu import Connection, Consumer

from contracts.broker import INTERVIEWS_QUEUE, PROJECTION_QUEUE
from domain.actors import DISPATCHER
from domain.application import DeveloperTools
from domain.webhooks import webhook_id
from services.dispatcher.committer import TRANSIENT_ERRORS, Committer
from services.dispatcher.dead_letters import DeadLetters
from services.dispatcher.delivery_runner import DeliveryJob, DeliveryRunner
from services.dispatcher.fair_pool import FairPool
from services.dispatcher.in_flight import InFlight
from services.dispatcher.projection import DispatchProjection
from services.dispatcher.receiving import BATCH, MessageReceiver
from services.dispatcher.sender import WebhookSender
from services.dispatcher.sweeper import StalledDeliveries
from services.infrastructure.broker import broker_connection, broker_display, corked
from services.infrastructure.retrying import ReconnectDelays
from services.infrastructure.topology import declare_topology, is_rabbitmq
from services.settings import Settings

log = logging.getLogger("tenzo.dispatcher")

POLL_SECONDS = 0.05
HOUSEKEEPING_SECONDS = 1.0
PROJECTION_PREFETCH = 100
# Not 0: py-amqp spins on a frame that is only partly there when the socket does not wait.
READ_AHEAD_SECONDS = 0.001


@dataclass(eq=False)
class Dispatcher:
    """``run(stop)`` consumes until ``stop`` is set, reconnecting after broker failures.
    Its parts are built once by services/bootstrap.py (``build_dispatcher``)."""

    settings: Settings
    application: DeveloperTools
    projection: DispatchProjection
    sender: WebhookSender
    committer: Committer
    pool: FairPool
    runner: DeliveryRunner
    in_flight: InFlight
    receiver: MessageReceiver
    dead_letters: DeadLetters
    stalled: StalledDeliveries
    drain_seconds: float = 10.0  # for attempts in progress when stopping
    ready: threading.Event = field(default_factory=threading.Event, init=False)
    """Set once consuming (tests, `tenzo serve`)."""

    def __post_init__(self) -> None:
        self.sweep_seconds = min(max(self.settings.retry_schedule.stalled_after / 3, 0.5), 10.0)
        self._found_stalled: queue.SimpleQueue[tuple[UUID, UUID]] = queue.SimpleQueue()
        self._next_housekeeping = 0.0

    @property
    def exclusive(self) -> bool:
        """Whether this is the only dispatcher (the embedded broker has one consumer)."""
        return self.receiver.exclusive

    # -- lifecycle -----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        backoff = ReconnectDelays()
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
        self.dead_letters.close()

    def _start_projection(self) -> None:
        """Fill the projection from the event store the first time (queue bindings made
        later than the first events would otherwise leave it empty), or finish a
        rebuild that was interrupted; not while another process rebuilds it."""
        if self.projection.needs_rebuild():
            log.info("dispatcher: building the projection from the event store")
            if self.projection.rebuild_if_needed() is None:
                log.info("dispatcher: another process is rebuilding the projection (or did)")

    def _consume(
        self, connection: Connection, stop: threading.Event, backoff: ReconnectDelays
    ) -> None:
        queues = declare_topology(connection)
        self.receiver.connected(exclusive=not is_rabbitmq(connection))
        channel = connection.default_channel
        prefetch = self.settings.dispatcher_prefetch
        with ExitStack() as consumers:
            # basic.qos applies to the consumers started after it on the channel: each
            # consumer sets its prefetch and starts before the next one sets its own.
            consumers.enter_context(
                Consumer(
                    channel,
                    [queues[INTERVIEWS_QUEUE]],
                    on_message=self.receiver.on_interview,
                    prefetch_count=prefetch,
                )
            )
            consumers.enter_context(
                Consumer(
                    channel,
                    [queues[PROJECTION_QUEUE]],
                    on_message=self.receiver.on_domain_event,
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
                if self.in_flight.finished:
                    with corked(connection):  # the acks of what finished, sent together
                        self.in_flight.settle_finished()
                self._resume_stalled()
                self._housekeeping()
                try:
                    self.dead_letters.ack_deferred()  # last round's, confirmed together
                    enough = self.receiver.arrived() + BATCH
                    connection.drain_events(timeout=POLL_SECONDS)
                    for _ in range(BATCH):  # what else has arrived already, boundedly
                        if self.receiver.arrived() >= enough or stop.is_set():
                            break
                        connection.drain_events(timeout=READ_AHEAD_SECONDS)
                except TimeoutError:
                    connection.heartbeat_check()
                self.receiver.start_arrived()
        self.dead_letters.ack_deferred()
        self.in_flight.settle_finished()

    def _resume_pending(self) -> None:
        """Continue every pending delivery (embedded broker: lost messages are not
        redelivered, but the event store knows what is unfinished)."""
        for pending_id in self.stalled.pending_ids():
            if pending_id in self.in_flight:
                continue
            delivery = self.runner.load(pending_id)
            if delivery is not None and delivery.status == "pending":
                log.info("resuming delivery %s", pending_id)
                reason = "the dispatcher restarted (embedded broker)"
                self.in_flight.claim(
                    DeliveryJob(delivery.id, delivery.org_id, resume_reason=reason)
                )

    # -- stalled deliveries --------------------------------------------------------------

    def _sweep(self, stop: threading.Event) -> None:
        """Find stalled deliveries every ``sweep_seconds`` (its own thread: the first
        pass reads the whole log); the consumer thread resumes them."""
        while not stop.wait(self.sweep_seconds):
            try:
                for delivery in self.stalled.find():
                    self._found_stalled.put((delivery.id, delivery.org_id))
                self._forget_expired_secrets()
            except Exception as error:  # noqa: BLE001 - tried again at the next sweep
                log.warning("sweeper: %s: %s", type(error).__name__, error)

    def _forget_expired_secrets(self) -> None:
        """Record ``PreviousSecretForgotten`` for each webhook whose rotated secret's
        overlap has ended (SPEC 9). Signing never waits for it (each attempt compares
        the expiry with its own time); the event says when the secret was let go, and
        the projection's copy goes with it. Any dispatcher may do it; the first wins."""
        now = self.application.clock()
        for org_id in self.projection.organizations_with_expired_previous_secrets(now):
            if self.application.forget_expired_previous_secret(org_id, DISPATCHER):
                log.info("organization %s: the previous webhook secret is forgotten", org_id)
            self.projection.catch_up("Webhook", webhook_id(org_id))

    def _resume_stalled(self) -> None:
        after = self.settings.retry_schedule.stalled_after
        while True:
            try:
                found, org_id = self._found_stalled.get_nowait()
            except queue.Empty:
                return
            if found in self.in_flight:
                continue  # running here (and recording nothing for that long: it is slow)
            reason = f"stalled: nothing recorded for {after:g} s after its next step was due"
            self.in_flight.claim(
                DeliveryJob(found, org_id, resume_reason=reason, only_if_stalled=True)
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
