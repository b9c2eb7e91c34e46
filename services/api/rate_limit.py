"""Per-key rate limit of the Public API: a token bucket per API key, per process.

Each bucket holds up to ``burst`` tokens and refills at ``per_second``; a request
takes one. Buckets live in the process (no shared store on the request path), so
with N API processes a key may reach N times the configured rate: the limit guards
the service against a runaway integration, it is not a billing quota.

A bucket that has filled up again is the same as no bucket, so full buckets are
dropped: at most once per refill time (``burst / per_second``), a request sweeps them
away. The dictionary holds only the keys used within about two refill times, however
many keys there are.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBuckets:
    """Token buckets keyed by API key id."""

    def __init__(
        self,
        per_second: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
    ):
        if per_second <= 0 or burst < 1:
            raise ValueError("a rate limit needs per_second > 0 and burst >= 1")
        self.per_second = per_second
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key → (tokens, at)
        self._lock = threading.Lock()
        self._refill_seconds = burst / per_second  # an empty bucket is full again after
        self._next_prune = clock() + self._refill_seconds

    def __len__(self) -> int:
        """The buckets held (keys used lately and not full again)."""
        with self._lock:
            return len(self._buckets)

    def take(self, key: str) -> float:
        """Take a token: 0.0 when allowed, else the seconds until one is available."""
        now = self.clock()
        with self._lock:
            if now >= self._next_prune:
                self._prune(now)
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.per_second)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.per_second

    def _prune(self, now: float) -> None:
        """Drop the buckets that are full again (the lock is held)."""
        self._buckets = {
            key: (tokens, at)
            for key, (tokens, at) in self._buckets.items()
            if tokens + (now - at) * self.per_second < self.burst
        }
        self._next_prune = now + self._refill_seconds
