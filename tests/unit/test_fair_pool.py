"""FairPool: per-organization limits, slow organizations, the active budget, timers."""

from __future__ import annotations

import threading
import time

import pytest

from services.dispatcher.fair_pool import FairPool


@pytest.fixture
def pool():
    created = []

    def make(**options):
        created.append(FairPool(**options))
        return created[-1]

    yield make
    for made in created:
        made.shutdown(timeout=1)


def wait_until(predicate, timeout=3.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


class Gate:
    """Tasks that block until released, recording how many run at once."""

    def __init__(self):
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.done = 0

    def task(self):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        self.release.wait(5)
        with self.lock:
            self.running -= 1
            self.done += 1


def test_one_organization_runs_at_most_per_org_tasks_at_once(pool):
    fair = pool(workers=16, per_org=3)
    gate = Gate()
    for _ in range(10):
        fair.submit("acme", gate.task)
    wait_until(lambda: gate.running == 3)
    time.sleep(0.05)
    assert gate.running == 3 and fair.waiting() == 7

    gate.release.set()
    wait_until(lambda: gate.done == 10)
    assert gate.most == 3


def test_a_slow_organization_runs_one_task_and_others_are_not_held_up(pool):
    fair = pool(workers=16, per_org=4, slow_after=0.1)
    hanging, quick = Gate(), Gate()
    quick.release.set()
    for _ in range(6):
        fair.submit("slow", hanging.task)
    wait_until(lambda: hanging.running == 4)
    time.sleep(0.15)  # its tasks have run longer than slow_after: it is slow now
    assert fair.backlog("slow") == 6
    for _ in range(20):
        fair.submit("fast", quick.task)
    wait_until(lambda: quick.done == 20)
    assert fair.backlog("fast") == 0  # not slow

    hanging.release.set()
    wait_until(lambda: hanging.done == 6)
    assert hanging.most == 4  # after the first four, one at a time


def test_mark_slow_limits_an_organization_until_it_answers_again(pool):
    fair = pool(workers=16, per_org=4)
    gate = Gate()
    fair.mark_slow("acme", True)
    for _ in range(3):
        fair.submit("acme", gate.task)
    wait_until(lambda: gate.running == 1)
    time.sleep(0.05)
    assert gate.running == 1

    fair.mark_slow("acme", False)
    wait_until(lambda: gate.running == 3)
    gate.release.set()


def test_tasks_no_longer_young_leave_the_active_budget(pool):
    fair = pool(workers=16, per_org=1, active=2, slow_after=1.0, young_for=0.1)
    stuck, later = Gate(), Gate()
    later.release.set()
    fair.submit("a", stuck.task)
    fair.submit("b", stuck.task)
    fair.submit("c", later.task)
    time.sleep(0.05)
    assert later.done == 0  # two young tasks use the whole active budget
    wait_until(lambda: later.done == 1)  # once they are old, the third one runs
    assert stuck.running == 2
    stuck.release.set()


def test_call_later_runs_after_the_delay_without_a_thread(pool):
    fair = pool(workers=1, per_org=1)
    ran = threading.Event()
    started = time.monotonic()
    fair.call_later(0.2, "acme", ran.set)
    assert fair.waiting() == 1
    assert ran.wait(2)
    assert time.monotonic() - started >= 0.19


def test_an_exception_in_a_task_frees_its_place(pool):
    fair = pool(workers=2, per_org=1)
    ran = threading.Event()

    def boom():
        raise RuntimeError("boom")

    fair.submit("acme", boom)
    fair.submit("acme", ran.set)
    assert ran.wait(2)
