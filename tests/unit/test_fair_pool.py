"""FairPool: adaptive per-organization limits, hanging organizations, the active budget,
timers."""

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


def attempt(fair, gate):
    """A task that sends an attempt and waits for the endpoint's reply until released."""

    def task():
        fair.sending()
        gate.task()

    return task


def test_one_organization_runs_at_most_per_org_tasks_at_once(pool):
    fair = pool(workers=16, per_org=3)
    for _ in range(3):
        fair.answered("acme")  # its endpoint answers: up to the bound
    gate = Gate()
    for _ in range(10):
        fair.submit("acme", gate.task)
    wait_until(lambda: gate.running == 3)
    time.sleep(0.05)
    assert gate.running == 3 and fair.waiting() == 7

    gate.release.set()
    wait_until(lambda: gate.done == 10)
    assert gate.most == 3


def test_a_new_organization_starts_at_half_the_bound_and_answers_raise_it(pool):
    fair = pool(workers=16, per_org=8)
    gate = Gate()
    for _ in range(10):
        fair.submit("acme", gate.task)
    wait_until(lambda: gate.running == 4)
    time.sleep(0.05)
    assert gate.running == 4

    fair.answered("acme")  # a slow answer is still an answer: one more at once
    fair.answered("acme")
    wait_until(lambda: gate.running == 6)
    assert fair.limit("acme") == 6
    gate.release.set()


def test_an_unanswered_attempt_allows_one_at_a_time_until_answers_come_again(pool):
    fair = pool(workers=16, per_org=8)
    for _ in range(4):
        fair.answered("acme")
    assert fair.limit("acme") == 8
    fair.unanswered("acme")
    assert fair.limit("acme") == 1
    gate = Gate()
    for _ in range(3):
        fair.submit("acme", gate.task)
    wait_until(lambda: gate.running == 1)
    time.sleep(0.05)
    assert gate.running == 1

    fair.answered("acme")
    wait_until(lambda: gate.running == 2)
    gate.release.set()


def test_a_hanging_organization_gets_no_more_and_others_are_not_held_up(pool):
    fair = pool(workers=16, per_org=8, hang_after=0.1)
    for _ in range(4):
        fair.answered("hanging")  # it was answering: limit 8
    hanging, quick = Gate(), Gate()
    quick.release.set()
    for _ in range(2):
        fair.submit("hanging", attempt(fair, hanging))
    wait_until(lambda: hanging.running == 2)
    assert fair.backlog("hanging") == 0  # not hanging yet
    time.sleep(0.3)  # waiting for a reply longer than hang_after, no answer: hanging
    for _ in range(4):
        fair.submit("hanging", attempt(fair, hanging))
    time.sleep(0.05)
    assert hanging.running == 2  # below its limit, but admitted nothing more
    assert fair.backlog("hanging") == 6
    for _ in range(20):
        fair.submit("fast", quick.task)
    wait_until(lambda: quick.done == 20)
    assert fair.backlog("fast") == 0

    fair.answered("hanging")  # it answers again: the waiting ones run
    wait_until(lambda: hanging.running == 6)
    assert fair.backlog("hanging") == 0
    hanging.release.set()
    wait_until(lambda: hanging.done == 6)


def test_a_busy_organization_that_keeps_answering_is_not_hanging(pool):
    fair = pool(workers=16, per_org=4, hang_after=0.1)
    gate = Gate()
    for _ in range(2):
        fair.submit("busy", attempt(fair, gate))
    wait_until(lambda: gate.running == 2)
    for _ in range(6):  # its attempts wait long, but answers keep coming
        time.sleep(0.05)
        fair.answered("busy")
        assert fair.backlog("busy") == 0
    for _ in range(2):
        fair.submit("busy", attempt(fair, gate))
    wait_until(lambda: gate.running == 4)
    gate.release.set()


def test_tasks_waiting_long_for_their_endpoint_leave_the_active_budget(pool):
    fair = pool(workers=16, per_org=1, active=2, hang_after=1.0, young_for=0.1)
    stuck, later = Gate(), Gate()
    later.release.set()
    fair.submit("a", attempt(fair, stuck))
    fair.submit("b", attempt(fair, stuck))
    fair.submit("c", later.task)
    time.sleep(0.05)
    assert later.done == 0  # two young tasks use the whole active budget
    wait_until(lambda: later.done == 1)  # once they are old, the third one runs
    assert stuck.running == 2
    stuck.release.set()


def test_tasks_slow_for_other_reasons_keep_their_place_in_the_active_budget(pool):
    # Waiting for the interpreter lock or the event store on a busy machine is work in
    # progress: more threads would only fight over the same CPU.
    fair = pool(workers=16, per_org=1, active=2, hang_after=1.0, young_for=0.05)
    busy, later = Gate(), Gate()
    later.release.set()
    fair.submit("a", busy.task)
    fair.submit("b", busy.task)
    fair.submit("c", later.task)
    time.sleep(0.3)  # six times young_for
    assert later.done == 0
    busy.release.set()
    wait_until(lambda: later.done == 1)


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


def test_a_task_that_has_its_reply_and_waits_for_the_store_is_not_hanging(pool):
    fair = pool(workers=16, per_org=4, hang_after=0.1)
    saving, replied = Gate(), threading.Event()

    def answered_then_slow_save():
        fair.sending()
        fair.answered("acme")  # the endpoint answered at once
        replied.set()
        saving.task()  # then the save waits (a PostgreSQL stall, say)

    fair.submit("acme", answered_then_slow_save)
    assert replied.wait(2)
    time.sleep(0.3)  # longer than hang_after, and no answer since
    assert fair.backlog("acme") == 0  # not hanging: it is not waiting for the endpoint
    saving.release.set()


def test_a_task_waiting_again_for_a_reply_can_hang_again(pool):
    fair = pool(workers=16, per_org=4, hang_after=0.1)
    second_attempt, gate = threading.Event(), Gate()

    def two_attempts():
        fair.sending()
        fair.unanswered("acme")  # the first attempt failed at once
        fair.sending()  # the next one waits for the endpoint
        second_attempt.set()
        gate.task()

    fair.submit("acme", two_attempts)
    assert second_attempt.wait(2)
    wait_until(lambda: fair.backlog("acme") == 1)
    gate.release.set()


def test_a_task_waiting_for_the_store_before_sending_is_not_hanging(pool):
    fair = pool(workers=16, per_org=4, hang_after=0.1)
    reading = Gate()
    fair.submit("acme", reading.task)  # reads the store; sends nothing yet
    wait_until(lambda: reading.running == 1)
    time.sleep(0.3)
    assert fair.backlog("acme") == 0
    reading.release.set()


def test_an_attempt_never_sent_waits_for_no_endpoint(pool):
    fair = pool(workers=16, per_org=4, hang_after=0.1)
    refused, after = threading.Event(), Gate()

    def refused_then_slow_save():
        fair.sending()
        fair.not_sent()  # the SSRF guard refused it: nothing waits for the endpoint
        refused.set()
        after.task()  # then the save waits

    fair.submit("acme", refused_then_slow_save)
    assert refused.wait(2)
    time.sleep(0.3)  # longer than hang_after, and no answer ever
    assert fair.backlog("acme") == 0  # not hanging
    assert fair.limit("acme") == 2  # limits unchanged
    after.release.set()


def test_backpressure_answers_halve_the_limit(pool):
    fair = pool(workers=16, per_org=8, hang_after=0.1)
    for _ in range(4):
        fair.answered("acme")
    assert fair.limit("acme") == 8
    fair.answered("acme", backpressure=True)  # 429 or 503
    assert fair.limit("acme") == 4
    fair.answered("acme", backpressure=True)
    assert fair.limit("acme") == 2
    fair.answered("acme")
    assert fair.limit("acme") == 3
