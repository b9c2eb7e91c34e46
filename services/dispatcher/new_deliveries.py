"""Creating the Delivery of an ``interview.completed`` message (SPEC 6, 7).

The receiver reads, for a batch of messages at once, what their deliveries need
(``InterviewContext``: the organization's webhook, the candidate and the job, whether
the delivery exists already); the runner calls ``DeliveryJob.create`` when the job
starts, which is ``NewDeliveries.for_interview`` bound to that message.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from contracts.broker import INTERVIEW_COMPLETED
from domain.actors import DISPATCHER
from domain.deliveries import Delivery
from services.dispatcher import metrics
from services.dispatcher.delivery_runner import DeliveryJob, is_fresh
from services.dispatcher.payloads import interview_completed_body
from services.dispatcher.projection import DispatchProjection, InterviewContext, InterviewRef

log = logging.getLogger("tenzo.dispatcher")


class NewDeliveries:
    """Builds new deliveries from received messages and the projection."""

    def __init__(self, projection: DispatchProjection):
        self.projection = projection

    def for_interview(
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
