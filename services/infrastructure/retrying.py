"""tenacity's wait and stop strategies, asked directly rather than through its call loop.

Our waits are not around one function call: a delivery's next attempt is scheduled on
a pool, and a reconnection waits on a stop event. So the strategies are asked with a
call state saying how many attempts were made (``after_attempts``).
"""

from __future__ import annotations

from tenacity import RetryCallState, wait_exponential


def after_attempts(made: int) -> RetryCallState:
    """A tenacity call state after ``made`` attempts (nothing is called through it)."""
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = made
    return state


class ReconnectDelays:
    """How long a process waits before reconnecting after a broker (or database)
    failure: tenacity's ``wait_exponential``, 0.2 s doubling up to 10 s, and back to
    0.2 s once connected (``reset``). Used by the relay and the dispatcher alike."""

    def __init__(self, first: float = 0.2, longest: float = 10.0):
        self.wait = wait_exponential(multiplier=first, max=longest)
        self.failures = 0

    def next(self) -> float:
        """The delay before the next reconnection attempt (one more failure)."""
        self.failures += 1
        return float(self.wait(after_attempts(self.failures)))

    def reset(self) -> None:
        self.failures = 0
