"""A bounded worker pool that keeps one organization's slow endpoint from delaying others.

- A task runs on one of ``workers`` threads. Each organization may run at most
  ``per_org`` tasks at a time, and only one while it is *slow*: while one of its
  tasks has run longer than ``slow_after`` seconds, or its last attempt ended in a
  timeout or connection failure (``mark_slow``). So a hanging endpoint holds about
  one thread, however many deliveries are waiting for it; the others wait in its
  own queue, not in front of other organizations' tasks.
- ``call_later`` runs a task after a delay without holding a thread while it waits
  (retry backoff), then queues it like any other.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from functools import partial

log = logging.getLogger("tenzo.dispatcher")

Task = Callable[[], None]


class FairPool:
    def __init__(self, workers: int, per_org: int, slow_after: float = 1.0):
        self.per_org = max(1, per_org)
        self.slow_after = slow_after
        self.workers = max(1, workers)
        # Daemon threads (not concurrent.futures, whose threads the interpreter waits
        # for at exit): shutdown() decides how long to wait for attempts in progress.
        self._tasks: queue.SimpleQueue[Task | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._queued = 0
        self._lock = threading.Lock()
        self._running: dict[Hashable, dict[int, float]] = {}
        self._waiting: dict[Hashable, deque[Task]] = {}
        self._slow: set[Hashable] = set()
        self._ids = itertools.count()
        self._timers: list[tuple[float, int, Hashable, Task]] = []
        self._timer_wakeup = threading.Condition(self._lock)
        self._closed = False
        self._timer_thread = threading.Thread(target=self._run_timers, name="tenzo-timers")
        self._timer_thread.daemon = True
        self._timer_thread.start()

    # -- submitting ------------------------------------------------------------------

    def submit(self, org: Hashable, task: Task) -> None:
        """Run ``task`` as soon as the organization's share of the pool allows."""
        with self._lock:
            if self._closed:
                return
            if self._may_start(org):
                self._start(org, task)
            else:
                self._waiting.setdefault(org, deque()).append(task)

    def call_later(self, delay: float, org: Hashable, task: Task) -> None:
        """Submit ``task`` after ``delay`` seconds, holding no thread meanwhile."""
        if delay <= 0:
            self.submit(org, task)
            return
        with self._lock:
            heapq.heappush(self._timers, (time.monotonic() + delay, next(self._ids), org, task))
            self._timer_wakeup.notify()

    def mark_slow(self, org: Hashable, slow: bool) -> None:
        """Record whether the organization's endpoint just failed to answer (timeout or
        connection failure): a slow organization runs one task at a time."""
        with self._lock:
            if slow:
                self._slow.add(org)
            else:
                self._slow.discard(org)
                self._start_waiting(org)

    def waiting(self) -> int:
        """Tasks queued behind their organization's limit or a timer (for tests, metrics)."""
        with self._lock:
            return sum(len(queue) for queue in self._waiting.values()) + len(self._timers)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop starting tasks (waiting ones and timers are dropped) and give the running
        ones up to ``timeout`` seconds to finish."""
        with self._lock:
            self._closed = True
            self._waiting.clear()
            self._timers.clear()
            self._timer_wakeup.notify()
            threads = list(self._threads)
            while True:  # tasks queued but not started are dropped too
                try:
                    self._tasks.get_nowait()
                except queue.Empty:
                    break
        for _ in threads:
            self._tasks.put(None)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # -- internals (called with the lock held) -------------------------------------------

    def _limit(self, org: Hashable) -> int:
        if org in self._slow:
            return 1
        now = time.monotonic()
        started = self._running.get(org, {}).values()
        if any(now - start > self.slow_after for start in started):
            return 1
        return self.per_org

    def _may_start(self, org: Hashable) -> bool:
        return len(self._running.get(org, {})) < self._limit(org)

    def _start(self, org: Hashable, task: Task) -> None:
        token = next(self._ids)
        self._running.setdefault(org, {})[token] = time.monotonic()
        self._tasks.put(partial(self._run, org, token, task))
        self._queued += 1
        if self._queued > self._idle and len(self._threads) < self.workers:
            thread = threading.Thread(
                target=self._work, name=f"tenzo-work-{len(self._threads)}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            task = self._tasks.get()
            with self._lock:
                self._idle -= 1
                self._queued = max(0, self._queued - 1)
            if task is None:
                return
            task()

    def _start_waiting(self, org: Hashable) -> None:
        queue = self._waiting.get(org)
        while queue and self._may_start(org):
            self._start(org, queue.popleft())
        if not queue:
            self._waiting.pop(org, None)

    def _run(self, org: Hashable, token: int, task: Task) -> None:
        try:
            task()
        except Exception:
            log.exception("dispatcher task failed")
        finally:
            with self._lock:
                running = self._running.get(org, {})
                running.pop(token, None)
                if not running:
                    self._running.pop(org, None)
                if not self._closed:
                    self._start_waiting(org)

    def _run_timers(self) -> None:
        with self._lock:
            while not self._closed:
                now = time.monotonic()
                while self._timers and self._timers[0][0] <= now:
                    _, _, org, task = heapq.heappop(self._timers)
                    if self._may_start(org):
                        self._start(org, task)
                    else:
                        self._waiting.setdefault(org, deque()).append(task)
                timeout = self._timers[0][0] - now if self._timers else None
                self._timer_wakeup.wait(timeout)
