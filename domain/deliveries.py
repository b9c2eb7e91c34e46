"""Webhook deliveries (SPEC 7): one Delivery per organization and event, every attempt
recorded as an event; and the use cases the admin API offers on them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypedDict
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.actors import Actor
from domain.errors import Conflict
from domain.paging import page_of_ids

if TYPE_CHECKING:
    from domain.ports import Catalog
    from domain.webhooks import Webhook

DeliveryStatus = Literal["pending", "succeeded", "failed"]
TEST_EVENT_TYPE = "webhook.test"
RECOVER_BATCH = 100  # deliveries read, and redelivered in one save, at a time
CLOCK_MARGIN = timedelta(minutes=5)  # how far creation times may run out of log order

TestEventRenderer = Callable[[UUID, str, datetime], str]
"""Renders a ``webhook.test`` body from (org_id, event_id, created_at); the body's shape
is a contracts/ concern, given to DeveloperTools by the composition root."""


def delivery_id(org_id: UUID, event_id: str) -> UUID:
    """The one id a delivery of ``event_id`` to ``org_id`` can have.

    Deterministic, so the same event received twice, or by two dispatchers at once,
    cannot create two deliveries: the event store refuses a second version 1.
    """
    return uuid.uuid5(org_id, event_id)


@dataclass(frozen=True)
class RetrySchedule:
    """When attempts are made, and when a pending delivery counts as abandoned.

    ``retry_delays[n]`` is the delay before attempt n+1 of a series (after the previous
    attempt ended, or after the series began); their count is the number of attempts.
    A pending delivery whose next step is overdue by more than ``stalled_after``
    seconds has no live dispatcher: any dispatcher may resume it (docs/reliability.md).
    ``stalled_after`` must exceed the longest attempt (the webhook timeout).
    """

    retry_delays: tuple[float, ...] = (0.0, 2.0, 4.0)
    stalled_after: float = 60.0

    @property
    def attempts(self) -> int:
        return len(self.retry_delays)


class RetryRule(Protocol):
    """How a delivery's attempts are spaced: the retry schedule as the dispatcher
    decides it (``RetryPolicy`` in services/dispatcher/retry.py, with tenacity). The
    aggregate knows when its series began and when its last attempt ended; the rule
    knows the delays, so both the dispatcher and a stall check ask the same rule."""

    @property
    def stalled_after(self) -> float:
        """Seconds a pending delivery's next step may be overdue before it is stalled."""
        ...

    def attempts_over(self, made: int) -> bool:
        """Whether a series with ``made`` attempts made has none left."""
        ...

    def delay_before(self, made: int) -> float:
        """Seconds from the previous attempt's end (or the series' start) to the next."""
        ...


class AttemptRecord(TypedDict):
    number: int
    started_at: datetime
    status_code: int | None
    duration_ms: int
    error: str | None
    response_excerpt: str
    cause: str | None
    request_headers: dict[str, str]
    response_headers: dict[str, str]
    run: int
    """The series it belongs to: 1 for the first, 2 for the first redelivery, …"""


class Delivery(Aggregate):
    """The delivery of one event to an organization's webhook.

    ``body`` is the exact JSON text sent, so every attempt and every redelivery sends
    the same bytes (and the same signature for the same secret and timestamp).
    Attempts are numbered from 1 across the whole life of the delivery; a redelivery
    starts a new series whose first attempt continues the numbering.
    """

    @staticmethod
    def create_id(org_id: UUID, event_id: str) -> UUID:
        return delivery_id(org_id, event_id)

    @event("Scheduled")
    def __init__(
        self, org_id: UUID, event_id: str, event_type: str, url: str, body: str, actor: Actor
    ):
        self.org_id = org_id
        self.event_id = event_id
        self.event_type = event_type
        self.url = url
        self.body = body
        self.attempts: list[AttemptRecord] = []
        self.status: DeliveryStatus = "pending"
        self.series_start = 1
        self.series = 1

    # -- commands ---------------------------------------------------------------------

    def record_attempt(
        self,
        started_at: datetime,
        status_code: int | None,
        duration_ms: int,
        error: str | None,
        response_excerpt: str,
        actor: Actor,
        cause: str | None = None,
        request_headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> int:
        """Record the next attempt of the current series; return its number.

        ``request_headers`` as sent and ``response_headers`` as kept (secrets masked,
        capped) by the sender; the body sent is the delivery's own and is not repeated.
        """
        if self.status != "pending":
            raise Conflict(f"delivery is {self.status}, not pending")
        number = self.next_attempt_number
        self._attempted(
            number=number,
            started_at=started_at,
            status_code=status_code,
            duration_ms=duration_ms,
            error=error,
            response_excerpt=response_excerpt,
            actor=actor,
            cause=cause,
            request_headers=request_headers,
            response_headers=response_headers,
        )
        return number

    @event("Attempted")
    def _attempted(
        self,
        number: int,
        started_at: datetime,
        status_code: int | None,
        duration_ms: int,
        error: str | None,
        response_excerpt: str,
        actor: Actor,
        # Absent from attempts recorded before SPEC 10's detail: None then.
        cause: str | None = None,
        request_headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> None:
        self.attempts.append(
            {
                "number": number,
                "started_at": started_at,
                "status_code": status_code,
                "duration_ms": duration_ms,
                "error": error,
                "response_excerpt": response_excerpt,
                "cause": cause if cause is not None else error,
                "request_headers": request_headers or {},
                "response_headers": response_headers or {},
                "run": self.series,
            }
        )

    def succeed(self, actor: Actor) -> None:
        if self.status != "pending" or not self.attempts_in_series:
            raise Conflict("only a pending delivery with an attempt can succeed")
        self._succeeded(actor=actor)

    @event("Succeeded")
    def _succeeded(self, actor: Actor) -> None:
        self.status = "succeeded"

    def fail(self, reason: str, actor: Actor) -> None:
        if self.status != "pending":
            raise Conflict(f"delivery is {self.status}, not pending")
        self._failed(reason=reason, actor=actor)

    @event("Failed")
    def _failed(self, reason: str, actor: Actor) -> None:
        self.status = "failed"

    def request_redelivery(
        self,
        url: str,
        actor: Actor,
        retry: RetryRule | None = None,
        now: datetime | None = None,
        recovery: bool = False,
    ) -> None:
        """Start a new attempt series (same event id, same body) to ``url``.

        Refused while the delivery is pending, unless it is stalled by ``retry`` at
        ``now`` (no dispatcher works on it: see ``is_stalled``). ``recovery``: one of
        many redelivered at once (``recover_deliveries``)."""
        stalled = retry is not None and now is not None and self.is_stalled(retry, now)
        if self.status == "pending" and not stalled:
            raise Conflict("The delivery is still in progress; redeliver it once it has ended.")
        self._redelivery_requested(url=url, series=self.series + 1, actor=actor, recovery=recovery)

    def resume(self, reason: str, actor: Actor) -> None:
        """Record that a dispatcher takes over this pending delivery (after a crash, or
        because nothing happened to it for too long).

        The resuming dispatcher cannot know whether the attempt after the last recorded
        one was sent before its predecessor stopped: ``reason`` says so, so the history
        shows where an unrecorded attempt may lie. Saved with optimistic concurrency,
        the event is also the claim: of two dispatchers resuming the same delivery,
        one saves it and the other sees the conflict.
        """
        if self.status != "pending":
            raise Conflict(f"delivery is {self.status}, not pending")
        self._resumed(reason=reason, actor=actor)

    @event("Resumed")
    def _resumed(self, reason: str, actor: Actor) -> None:
        pass

    @event("RedeliveryRequested")
    def _redelivery_requested(
        self, url: str, series: int, actor: Actor, recovery: bool = False
    ) -> None:
        self.url = url
        self.series = series
        self.series_start = len(self.attempts) + 1
        self.status = "pending"

    # -- queries ----------------------------------------------------------------------

    def next_attempt_at(self, retry: RetryRule) -> datetime | None:
        """When the next attempt of a pending delivery is due (None once it has ended,
        or when its attempts are all made and only the outcome is left to record)."""
        if self.status != "pending" or retry.attempts_over(self.attempts_in_series):
            return None
        return self.next_attempt_due(retry)

    @property
    def next_attempt_number(self) -> int:
        return len(self.attempts) + 1

    @property
    def attempts_in_series(self) -> int:
        """How many attempts the current series (the first, or the latest redelivery) has."""
        return len(self.attempts) - self.series_start + 1

    @property
    def completed_at(self) -> datetime | None:
        """When the delivery ended (its last event), or None while it is pending."""
        return None if self.status == "pending" else self.modified_on

    def next_attempt_due(self, retry: RetryRule) -> datetime:
        """When the next attempt of the current series is due: its delay after the
        previous attempt ended, or after the series began (scheduled, redelivery asked,
        resumed). With every attempt made, the outcome is due at once (its last event)."""
        made = self.attempts_in_series
        if retry.attempts_over(made):
            return self.modified_on
        since = self.last_attempt_ended_at() or self.modified_on
        return since + timedelta(seconds=retry.delay_before(made))

    def is_stalled(self, retry: RetryRule, now: datetime) -> bool:
        """Whether this pending delivery has no live dispatcher: its next step is overdue
        by more than ``retry.stalled_after`` seconds (longer than an attempt may
        take), and nothing was recorded of it in that time either."""
        if self.status != "pending":
            return False
        latest = max(self.next_attempt_due(retry), self.modified_on)
        return now > latest + timedelta(seconds=retry.stalled_after)

    def last_attempt_ended_at(self) -> datetime | None:
        """When the latest attempt of the current series ended, if it has one."""
        if not self.attempts_in_series:
            return None
        last = self.attempts[-1]
        return last["started_at"] + timedelta(milliseconds=last["duration_ms"])


class DeliveryUseCases:
    """Mixed into DeveloperTools: deliveries of events to an organization's webhook.

    The dispatcher (services/dispatcher) creates and advances deliveries itself,
    saving many at once; these are the commands and queries of the admin API.
    """

    if TYPE_CHECKING:  # provided by DeveloperTools
        render_test_event: TestEventRenderer
        catalog: Catalog
        clock: Callable[[], datetime]
        retry: RetryRule

        def save(self, *objs: Any, **kwargs: Any) -> Any: ...
        def get_webhook(self, org_id: UUID) -> Webhook: ...
        def _get_owned(self, cls: type[Any], org_id: UUID, aggregate_id: UUID) -> Any: ...
        def _get_many(self, cls: type[Any], org_id: UUID, ids: Sequence[UUID]) -> list[Any]: ...

    def send_test_event(self, org_id: UUID, by: Actor) -> Delivery:
        """Schedule a signed ``webhook.test`` delivery to the organization's webhook.

        Refused (Conflict) while delivery is disabled: nothing is sent then.
        """
        webhook = self._enabled_webhook(org_id)
        event_id = str(uuid.uuid4())
        delivery = Delivery(
            org_id=org_id,
            event_id=event_id,
            event_type=TEST_EVENT_TYPE,
            url=webhook.url,
            body=self.render_test_event(org_id, event_id, self.clock()),
            actor=by,
        )
        self.save(delivery)
        return delivery

    def request_redelivery(self, org_id: UUID, id: UUID, by: Actor) -> Delivery:
        """Send an ended delivery again, to the current URL: a new series of attempts
        with the same event id and body. Refused (Conflict) while it is still pending
        or while delivery is disabled. A stalled pending delivery (its dispatcher stopped
        and none has resumed it yet) may be redelivered."""
        delivery = self.get_delivery(org_id, id)
        webhook = self._enabled_webhook(org_id)
        delivery.request_redelivery(url=webhook.url, actor=by, retry=self.retry, now=self.clock())
        self.save(delivery)
        return delivery

    def failed_delivery_ids(
        self, org_id: UUID, since: datetime, until: datetime | None = None
    ) -> list[UUID]:
        """The organization's failed deliveries created in [``since``, ``until``), newest
        first (what ``recover_deliveries`` would redeliver).

        Pages through the catalog's failed deliveries, newest first, and stops after a
        page whose oldest delivery was created well before ``since`` (the catalog's order
        follows creation, give or take the clocks of the processes that wrote them)."""
        self.catalog.wait_for_writes(org_id)
        found: list[UUID] = []
        before: int | None = None
        while True:
            rows = self.catalog.aggregate_ids(
                org_id, "Delivery", limit=RECOVER_BATCH, before=before, status="failed"
            )
            if not rows:
                return found
            before = rows[-1][0]
            page = self._get_many(Delivery, org_id, [aggregate_id for _, aggregate_id in rows])
            for delivery in page:
                created = delivery.created_on
                if (
                    delivery.status == "failed"
                    and since <= created
                    and (until is None or created < until)
                ):
                    found.append(delivery.id)
            if page and min(d.created_on for d in page) < since - CLOCK_MARGIN:
                return found

    def recover_deliveries(
        self,
        org_id: UUID,
        delivery_ids: Sequence[UUID],
        by: Actor,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Redeliver these deliveries, each as a new run to the current URL, ``RECOVER_BATCH``
        per save; those no longer failed are left alone. Return how many were redelivered.
        Refused (Conflict) while delivery is disabled. The dispatcher runs them through
        its per-organization fair pool, so a recovery never starves other organizations.
        ``progress(n)`` is called after each batch with the number of ids it covered."""
        webhook = self._enabled_webhook(org_id)
        recovered = 0
        for first in range(0, len(delivery_ids), RECOVER_BATCH):
            chunk = delivery_ids[first : first + RECOVER_BATCH]
            failed = [d for d in self._get_many(Delivery, org_id, chunk) if d.status == "failed"]
            for delivery in failed:
                delivery.request_redelivery(url=webhook.url, actor=by, recovery=True)
            if failed:
                self.save(*failed)
            recovered += len(failed)
            if progress is not None:
                progress(len(chunk))
        return recovered

    def get_delivery(self, org_id: UUID, id: UUID) -> Delivery:
        delivery: Delivery = self._get_owned(Delivery, org_id, id)
        return delivery

    def list_deliveries(
        self,
        org_id: UUID,
        status: DeliveryStatus | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> tuple[list[Delivery], str | None]:
        """A page of the organization's deliveries, newest first, optionally of one status,
        and the next page's cursor (None on the last page)."""
        ids, next_cursor = page_of_ids(
            self.catalog, org_id, "Delivery", limit, cursor, status=status
        )
        return self._get_many(Delivery, org_id, ids), next_cursor

    def _enabled_webhook(self, org_id: UUID) -> Webhook:
        webhook = self.get_webhook(org_id)
        if not webhook.enabled:
            raise Conflict("Webhook delivery is disabled; enable it to send events.")
        return webhook
