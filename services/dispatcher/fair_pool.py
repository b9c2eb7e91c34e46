"""A bounded worker pool that keeps one organization's hanging endpoint from delaying others.

- Each organization may have as many tasks admitted at a time as its adaptive limit
  allows (adaptive_limits.py: additive increase on every answered attempt, halved on
  every timeout or connection failure, between 1 and ``per_org``, the fairness bound).
  An answer of 429 or 503 halves it too (backpressure). The runner reports each
  attempt's reply (``answered``, ``unanswered``, ``not_sent``). A *busy*
  endpoint, one that answers however slowly, keeps its full concurrency.
- An organization is *hanging* while one of its attempts has waited longer than
  ``hang_after`` seconds for the endpoint's reply (from ``sending`` to ``answered``,
  ``unanswered`` or ``not_sent``) and the endpoint has answered nothing for as long: it is admitted
  nothing more until an answer comes or a task ends (``backlog`` counts what it holds,
  which the receiver uses to set its surplus aside). A busy endpoint answers some
  attempt every moment and never hangs; a task waiting for the event store (a slow
  read or save) is not waiting for the endpoint.
- Admitted tasks run on up to ``workers`` threads, but at most ``active`` *young*
  ones at a time. A task that has waited longer than ``young_for`` for its endpoint's
  answer stops counting, so it holds a thread but no share of the active budget:
  hanging endpoints cannot starve the others, and the tasks doing work are few enough
  not to thrash over the interpreter lock. A task that is slow for any other reason
  (waiting for the interpreter lock or the event store on a busy machine) keeps
  counting: when it aged by the clock alone, CPU contention made every task old and
  the pool grew to all ``workers`` threads fighting for one lock (docs/benchmarks.md).
  ``young_for`` is shorter than ``hang_after``: while many endpoints start hanging at
  once, their first moments must not take the whole budget.
- ``call_later`` runs a task after a delay without holding a thread while it waits
  (retry backoff), then admits it like any other.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from functools import partial

from services.dispatcher.adaptive_limits import AdaptiveLimits

log = logging.getLogger("tenzo.dispatcher")

Task = Callable[[], None]


class FairPool:
    def __init__(
        self,
        workers: int,
        per_org: int,
        active: int = 32,
        hang_after: float = 1.0,
        young_for: float = 0.25,
    ):
        self.per_org = max(1, per_org)
        self.workers = max(1, workers)
        self.active = max(1, min(active, self.workers))
        self.hang_after = hang_after
        self.young_for = min(young_for, hang_after)
        # Half the bound at first: a new endpoint that hangs holds few threads, one that
        # answers reaches the bound after a few answers.
        self.limits = AdaptiveLimits(self.per_org, initial=(self.per_org + 1) // 2)
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._ids = itertools.count()
        # Per organization: admitted tasks (token → start time once running, else None)
        # and tasks waiting for admission.
        self._admitted: dict[Hashable, dict[int, float | None]] = {}
        self._waiting: dict[Hashable, deque[Task]] = {}
        # Running tasks waiting for their endpoint's reply (token → since when), and the
        # task each worker thread runs (the runner reports attempts from that thread).
        self._awaiting: dict[int, float] = {}
        self._running = threading.local()
        # Admitted tasks waiting for an active slot, oldest first.
        self._ready: deque[tuple[Hashable, int, Task]] = deque()
        # Running tasks younger than young_for, and when each stops being young.
        self._young: set[int] = set()
        self._aging: list[tuple[float, int]] = []
        self._timers: list[tuple[float, int, Hashable, Task]] = []
        # Daemon threads (not concurrent.futures, whose threads the interpreter waits
        # for at exit): shutdown() decides how long to wait for attempts in progress.
        self._tasks: queue.SimpleQueue[Task | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._queued = 0
        self._closed = False
        # When the timer thread means to wake next (inf: only when notified). Others
        # notify it only for an earlier deadline: under load, waking it on every
        # dispatch cost more than the dispatching.
        self._timer_wakes_at = 0.0
        self._timer_thread = threading.Thread(target=self._run_timers, name="tenzo-timers")
        self._timer_thread.daemon = True
        self._timer_thread.start()

    # -- submitting ------------------------------------------------------------------

    def submit(self, org: Hashable, task: Task) -> None:
        """Run ``task`` as soon as the organization's share of the pool allows."""
        with self._lock:
            if self._closed:
                return
            if self._may_admit(org):
                self._admit(org, task)
                self._dispatch()
            else:
                self._waiting.setdefault(org, deque()).append(task)

    def call_later(self, delay: float, org: Hashable, task: Task) -> None:
        """Submit ``task`` after ``delay`` seconds, holding no thread meanwhile."""
        if delay <= 0:
            self.submit(org, task)
            return
        due = time.monotonic() + delay
        with self._lock:
            heapq.heappush(self._timers, (due, next(self._ids), org, task))
            self._wake_timer_by(due)

    def sending(self) -> None:
        """The running task (this thread's) sends an attempt now: it waits for the
        endpoint's reply until ``answered`` or ``unanswered``."""
        with self._lock:
            now = time.monotonic()
            token = getattr(self._running, "token", -1)
            self._awaiting[token] = now
            heapq.heappush(self._aging, (now + self.young_for, token))
            if self._ready:  # the timer thread retries when this one has aged
                self._wake_timer_by(now + self.young_for)

    def answered(self, org: Hashable, backpressure: bool = False) -> None:
        """The organization's endpoint answered an attempt (any status, however late):
        one more of its tasks may run at once, up to ``per_org`` — or half as many when
        the answer asks for less (``backpressure``: 429, 503)."""
        with self._lock:
            if backpressure:
                self.limits.pushed_back(org, time.monotonic())
            else:
                self.limits.answered(org, time.monotonic())
            self._awaiting.pop(getattr(self._running, "token", -1), None)
            if org in self._waiting and not self._closed:
                self._admit_waiting(org)
                self._dispatch()

    def unanswered(self, org: Hashable) -> None:
        """An attempt timed out or could not connect: half as many may run at once."""
        with self._lock:
            self.limits.unanswered(org)
            self._awaiting.pop(getattr(self._running, "token", -1), None)

    def not_sent(self) -> None:
        """The running task's attempt was refused before sending (SSRF guard, invalid
        URL, no DNS answer): it waits for no endpoint; limits are unchanged."""
        with self._lock:
            self._awaiting.pop(getattr(self._running, "token", -1), None)

    def limit(self, org: Hashable) -> int:
        """How many of the organization's tasks may run at once now."""
        with self._lock:
            return self.limits.limit(org)

    def backlog(self, org: Hashable) -> int:
        """How many tasks the organization has admitted or waiting while it is hanging
        (0 when it is not): work held for an endpoint that is not answering."""
        with self._lock:
            if not self._is_hanging(org, time.monotonic()):
                return 0
            return len(self._admitted.get(org, {})) + len(self._waiting.get(org, ()))

    def has_a_round_ready(self) -> bool:
        """Whether as many admitted tasks wait for an active slot as run at once: work
        enough for the next round (what waits behind an organization's limit or a timer
        does not count)."""
        with self._lock:
            return len(self._ready) >= self.active

    def waiting(self) -> int:
        """Tasks not running yet: behind their organization's limit, an active slot or a
        timer (for tests and metrics)."""
        with self._lock:
            queued = sum(len(tasks) for tasks in self._waiting.values())
            return queued + len(self._ready) + len(self._timers)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop starting tasks (waiting ones and timers are dropped) and give the running
        ones up to ``timeout`` seconds to finish."""
        with self._lock:
            self._closed = True
            self._waiting.clear()
            self._ready.clear()
            self._timers.clear()
            self._wakeup.notify()
            threads = list(self._threads)
            while True:  # tasks handed to threads but not started are dropped too
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

    def _is_hanging(self, org: Hashable, now: float) -> bool:
        """An attempt has waited longer than ``hang_after`` for the endpoint's reply, and
        no answer came meanwhile."""
        admitted = self._admitted.get(org)
        if not admitted:
            return False
        since = now - self.hang_after
        answered_at = self.limits.answered_at(org)
        if answered_at is not None and answered_at > since:
            return False
        return any(self._awaiting.get(token, math.inf) < since for token in admitted)

    def _may_admit(self, org: Hashable) -> bool:
        if len(self._admitted.get(org, ())) >= self.limits.limit(org):
            return False
        return not self._is_hanging(org, time.monotonic())

    def _admit(self, org: Hashable, task: Task) -> None:
        token = next(self._ids)
        self._admitted.setdefault(org, {})[token] = None
        self._ready.append((org, token, task))

    def _admit_waiting(self, org: Hashable) -> None:
        waiting = self._waiting.get(org)
        while waiting and self._may_admit(org):
            self._admit(org, waiting.popleft())
        if not waiting:
            self._waiting.pop(org, None)

    def _dispatch(self) -> None:
        """Start ready tasks while the active budget allows."""
        now = time.monotonic()
        while self._aging and self._aging[0][0] <= now:
            token = heapq.heappop(self._aging)[1]
            if self._awaiting.get(token, now) <= now - self.young_for:
                self._young.discard(token)  # still waiting for its endpoint's answer
        while self._ready and len(self._young) < self.active:
            org, token, task = self._ready.popleft()
            self._admitted[org][token] = now
            self._young.add(token)
            self._tasks.put(partial(self._run, org, token, task))
            self._queued += 1
            if self._queued > self._idle and len(self._threads) < self.workers:
                thread = threading.Thread(
                    target=self._work, name=f"tenzo-work-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        if self._ready and self._aging:  # the timer thread retries when a young task ages
            self._wake_timer_by(self._aging[0][0])

    def _wake_timer_by(self, deadline: float) -> None:
        if deadline < self._timer_wakes_at:
            self._timer_wakes_at = deadline
            self._wakeup.notify()

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

    def _run(self, org: Hashable, token: int, task: Task) -> None:
        self._running.token = token
        try:
            task()
        except Exception:
            log.exception("dispatcher task failed")
        finally:
            self._running.token = -1
            with self._lock:
                self._awaiting.pop(token, None)
                admitted = self._admitted.get(org, {})
                admitted.pop(token, None)
                if not admitted:
                    self._admitted.pop(org, None)
                self._young.discard(token)
                if not self._closed:
                    self._admit_waiting(org)
                    self._dispatch()

    def _run_timers(self) -> None:
        with self._lock:
            while not self._closed:
                now = time.monotonic()
                while self._timers and self._timers[0][0] <= now:
                    _, _, org, task = heapq.heappop(self._timers)
                    if self._may_admit(org):
                        self._admit(org, task)
                    else:
                        self._waiting.setdefault(org, deque()).append(task)
                self._dispatch()
                wake_at = [self._timers[0][0]] if self._timers else []
                if self._ready and self._aging:
                    wake_at.append(self._aging[0][0])
                self._timer_wakes_at = min(wake_at) if wake_at else math.inf
                timeout = max(0.0, self._timer_wakes_at - now) if wake_at else None
                self._wakeup.wait(timeout)
