"""How many deliveries each organization may have running: additive increase,
multiplicative decrease (AIMD), as TCP sizes its congestion window.

- A new organization starts at ``initial`` (the FairPool passes half the ceiling,
  rounded up): nothing is known of its endpoint yet.
- Every *answered* attempt (any HTTP status but 429 and 503, however long it took) adds one, up to
  ``ceiling`` (TENZO_DISPATCHER_PER_ORG_CONCURRENCY, the fairness bound). An endpoint
  that answers in 1.5 s is busy, not broken: it reaches the ceiling after a few answers.
- An answer of 429 (Too Many Requests) or 503 (Service Unavailable) is the endpoint
  asking for less: it halves the limit (backpressure), though it is an answer (the
  endpoint is not hanging).
- Every attempt that got no answer (timeout, connection refused or reset, TLS failure)
  brings the limit back to 1, as TCP's window after a retransmission timeout: an
  endpoint that hangs holds one worker thread from its first timeout on. Halving
  (2 after 4 after 8) let a hundred hanging endpoints hold two threads each for a
  timeout more, which was enough to take every worker (docs/benchmarks.md); answers
  bring a flaky endpoint back to its ceiling after a few attempts.
- An attempt never sent (refused by the SSRF guard, an invalid URL, a host that does
  not resolve) says nothing about the endpoint's capacity and changes nothing.

CPU contention in the dispatcher makes attempts *slower*, not unanswered, so it never
lowers a limit: throughput degrades with the CPU available and does not collapse.

Not thread-safe: the FairPool calls it with its lock held. At most ``remembered``
organizations are kept (least recently seen forgotten first); a forgotten one starts
again at ``initial``.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

REMEMBERED = 10_000


@dataclass
class _State:
    limit: float
    answered_at: float | None = None  # monotonic time of the last answered attempt


class AdaptiveLimits:
    def __init__(
        self,
        ceiling: int,
        initial: int = 1,
        decrease: float = 0.5,
        remembered: int = REMEMBERED,
    ) -> None:
        self.ceiling = max(1, ceiling)
        self.initial = max(1, min(initial, self.ceiling))
        self.decrease = decrease
        self.remembered = max(1, remembered)
        self._states: dict[Hashable, _State] = {}

    def limit(self, org: Hashable) -> int:
        """Deliveries the organization may have running at once (1 to ``ceiling``)."""
        state = self._states.get(org)
        return self.initial if state is None else int(state.limit)

    def answered_at(self, org: Hashable) -> float | None:
        """When the organization's endpoint last answered (monotonic), if it has."""
        state = self._states.get(org)
        return None if state is None else state.answered_at

    def answered(self, org: Hashable, now: float) -> None:
        """An attempt got an HTTP answer (any status): one more may run at once."""
        state = self._touch(org)
        state.limit = min(float(self.ceiling), state.limit + 1)
        state.answered_at = now

    def pushed_back(self, org: Hashable, now: float) -> None:
        """An attempt was answered 429 or 503: half as many may run at once, though the
        endpoint answered."""
        state = self._touch(org)
        state.limit = max(1.0, state.limit * self.decrease)
        state.answered_at = now

    def unanswered(self, org: Hashable) -> None:
        """An attempt timed out or could not connect: one at a time from now on."""
        self._touch(org).limit = 1.0

    def _touch(self, org: Hashable) -> _State:
        state = self._states.pop(org, None)
        if state is None:
            state = _State(float(self.initial))
            if len(self._states) >= self.remembered:  # forget the least recently seen
                del self._states[next(iter(self._states))]
        self._states[org] = state  # (re)inserted last: dicts keep insertion order
        return state
