"""The retry schedule of webhook deliveries: the one place it is decided (SPEC 7).

``TENZO_WEBHOOK_RETRY_DELAYS`` (``RetrySchedule.retry_delays`` in domain/deliveries.py)
gives the delay before each attempt of a series, and its count is the number of
attempts. Here that schedule is expressed with tenacity's strategies, as the design
names: ``stop_after_attempt`` ends a series once its attempts are made, and
``wait_schedule`` waits exactly the configured delay before the next one, no jitter,
no growth. Nothing here sleeps or reads a clock. The Delivery aggregate applies the
policy to what it recorded (``Delivery.next_attempt_due(policy)``: the delay after its
last attempt ended, or after its series began; ``is_stalled``), through the domain's
``RetryRule`` protocol, so the runner scheduling the next step on its pool (a waiting
delivery holds no thread), the sweeper and an admin's redelivery all ask this one
policy. A resumed delivery is answered the same way, from what is recorded.

tenacity counts the attempts made so far (``RetryCallState.attempt_number``); a state
with ``n`` attempts made asks for the delay before attempt ``n + 1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tenacity import RetryCallState, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from domain.deliveries import RetrySchedule
from services.infrastructure.retrying import after_attempts


class wait_schedule(wait_base):  # noqa: N801 - named like tenacity's own strategies
    """Wait ``delays[n]`` seconds before attempt ``n + 1``, ``n`` the attempts made."""

    def __init__(self, delays: tuple[float, ...]) -> None:
        if not delays:
            raise ValueError("a retry schedule needs at least one attempt")
        self.delays = delays

    def __call__(self, retry_state: RetryCallState) -> float:
        made = retry_state.attempt_number
        return self.delays[min(max(made, 0), len(self.delays) - 1)]


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts a series has, the delay before each, and when a pending
    delivery counts as stalled (the domain's ``RetryRule``)."""

    schedule: RetrySchedule
    stop: stop_base = field(init=False)
    wait: wait_base = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stop", stop_after_attempt(self.schedule.attempts))
        object.__setattr__(self, "wait", wait_schedule(tuple(self.schedule.retry_delays)))

    @property
    def attempts(self) -> int:
        """How many attempts a series has."""
        return self.schedule.attempts

    @property
    def stalled_after(self) -> float:
        """Seconds a pending delivery's next step may be overdue before it is stalled."""
        return self.schedule.stalled_after

    def attempts_over(self, made: int) -> bool:
        """Whether a series with ``made`` attempts made has none left."""
        return bool(self.stop(after_attempts(made)))

    def delay_before(self, made: int) -> float:
        """Seconds between the previous attempt's end (or the series' start) and the
        next attempt, ``made`` attempts of the series being made."""
        return float(self.wait(after_attempts(made)))
