"""SPEC 11 under faults, with real processes: `tenzo relay` and `tenzo dispatcher` in
subprocesses on PostgreSQL and RabbitMQ (the embedded broker where it applies), a
producer publishing interviews with pika, a TCP fault proxy (tests/support/tcp_proxy.py)
in front of a process's PostgreSQL or RabbitMQ, SIGKILL, and two dispatchers at once.
This process plays the API: it creates the organizations, webhooks, jobs, candidates
and test events through the application, and reads the outcome from the event store.

The receiver answers 500 to every attempt 1 and 200 to the others, so every delivery
goes through a retry: a recorded first attempt whose second never comes is a stranded
delivery, and shows. Each test ends with the same check (tests/support/fault_runs.py):
every published interview is exactly one delivery record, ``succeeded`` or ``failed``
after all its attempts, none ``pending``, attempts numbered 1..n, none lost. Retry
delays are short (0, 0.5, 0.5 s) and TENZO_DISPATCHER_STALLED_AFTER is 3 s, so a
dispatcher that finishes stranded deliveries does so within the wait (which ends once
nothing has changed for 15 s while no message waits on the broker).

The load is spread over many organizations (three interviews each): an organization
whose attempts wait for an answer (a fault between the dispatcher and the receiver)
counts as hanging, and a hanging organization's surplus is set aside for 30 s
(docs/dispatcher.md) — correct, but 30 s of waiting per test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from domain.actors import OPERATOR
from services.bootstrap import build_application
from services.settings import Settings
from tests.support import fault_runs
from tests.support.dispatching import delete_topology, wait_for
from tests.support.fault_runs import (
    ATTEMPT_RECORDED,
    InterviewLoad,
    Published,
    Tenant,
    TenzoProcess,
    assert_each_delivered_once,
    check_deliveries,
    delivery_statuses,
    process_env,
    proxy_for,
    through,
    wait_until_settled,
)

flaky_receiver = fault_runs.flaky_receiver  # fixture: 500 to attempt 1, then 200


@pytest.fixture
def rabbitmq(amqp_url: str) -> Iterator[str]:
    """RabbitMQ with a clean topology (queues and exchange deleted after the test)."""
    delete_topology(amqp_url)
    try:
        yield amqp_url
    finally:
        delete_topology(amqp_url)


ON_SERVERS = [pytest.mark.postgres, pytest.mark.rabbitmq]


@pytest.fixture(params=["embedded", pytest.param("servers", marks=ON_SERVERS)])
def deployment(request: pytest.FixtureRequest, tmp_path: Any) -> tuple[str, str]:
    """(database URL, broker URL): SQLite and the embedded broker, or PostgreSQL and
    RabbitMQ."""
    if request.param == "embedded":
        return f"sqlite:///{tmp_path}/events.sqlite3", f"filesystem://{tmp_path}/broker"
    return request.getfixturevalue("postgres_url"), request.getfixturevalue("rabbitmq")


@contextmanager
def open_store(database_url: str, receiver: Any) -> Iterator[Any]:
    """The application in this process: what the API would do, and the final reads."""
    application = build_application(Settings.from_env(process_env(database_url, "", receiver)))
    try:
        yield application
    finally:
        application.close()


@pytest.fixture
def postgres_store(postgres_url, flaky_receiver):
    with open_store(postgres_url, flaky_receiver) as application:
        yield application


def run_processes(*processes: TenzoProcess) -> None:
    """Start them all, then wait until each works."""
    for process in processes:
        process.launch()
    for process in processes:
        process.wait_ready()


def stop_processes(*processes: TenzoProcess) -> None:
    for process in processes:
        process.stop()


def settle_and_check(
    application: Any, published: Published, broker_url: str, receiver: Any, *processes: TenzoProcess
) -> None:
    wait_until_settled(application, published, broker_url)
    assert_each_delivered_once(check_deliveries(application, published, receiver), *processes)


# -- (a) the dispatcher's PostgreSQL connections --------------------------------------------


@pytest.mark.postgres
@pytest.mark.rabbitmq
def test_postgres_lost_commit_replies_resets_and_cuts_strand_no_delivery(
    postgres_url, rabbitmq, flaky_receiver, postgres_store
):
    """The dispatcher's PostgreSQL connections (through the fault proxy) fail while it
    delivers 150 interviews published at once: the reply to its first group commit of
    10 attempts or more is lost after the server committed (the outcome the client
    cannot know; a second one too, if there is one), then, while the retries are
    saved, every connection is reset (RST), cut (refused for 0.2 s) and stalled for
    1.5 s. Every delivery still ends on its own, once, numbered 1..n.

    Fails on the code of issue 12 (32 of 150 pending in every run: the first group
    commit holds the 32 attempts the worker pool runs at once): the retry of the
    ambiguous save conflicts with what was committed, the dispatcher reads that as
    "advanced by another dispatcher", acks the message and forgets the delivery."""
    application = postgres_store
    tenants = Tenant.several(application, flaky_receiver.url, 50)
    with proxy_for(postgres_url) as proxy:
        relay = TenzoProcess("relay", process_env(postgres_url, rabbitmq, flaky_receiver))
        dispatcher = TenzoProcess(
            "dispatcher", process_env(through(proxy, postgres_url), rabbitmq, flaky_receiver)
        )
        try:
            run_processes(relay, dispatcher)
            proxy.drop_reply_to(b"COMMIT", b"COMMIT", times=2, after=ATTEMPT_RECORDED, at_least=10)
            with InterviewLoad(rabbitmq, tenants, count=150, per_second=1000) as load:
                pass
            wait_for(lambda: proxy.counts.dropped_replies, 20, "a lost commit reply")
            time.sleep(0.5)
            proxy.reset()
            time.sleep(0.5)
            proxy.cut()
            time.sleep(0.2)
            proxy.restore()
            proxy.stall()
            time.sleep(1.5)
            proxy.resume()
            proxy.disarm()
            print(proxy.counts)
            settle_and_check(application, load.published, rabbitmq, flaky_receiver, dispatcher)
        finally:
            stop_processes(dispatcher, relay)
    counts = proxy.counts
    assert counts.dropped_replies >= 1 and counts.reset >= 2 and counts.cut >= 1, counts


# -- (b) the dispatcher's RabbitMQ connection -----------------------------------------------


@pytest.mark.postgres
@pytest.mark.rabbitmq
def test_amqp_reset_cut_and_stall_lose_no_delivery(
    postgres_url, rabbitmq, flaky_receiver, postgres_store
):
    """The dispatcher's RabbitMQ connection (through the fault proxy) is reset, then
    cut for 1 s, then stalled for 3 s (no byte either way), then reset again while
    retries are due, as 120 interviews arrive. RabbitMQ gives the unacknowledged
    messages back (redelivered), the dispatcher reconnects, and every delivery ends
    once, numbered 1..n. (Passes on the code of issue 12; a dispatcher that does not
    reconnect after a broker error fails it: 100 of 120 lost, 16 pending.)"""
    application = postgres_store
    tenants = Tenant.several(application, flaky_receiver.url, 40)
    with proxy_for(rabbitmq) as proxy:
        relay = TenzoProcess("relay", process_env(postgres_url, rabbitmq, flaky_receiver))
        dispatcher = TenzoProcess(
            "dispatcher", process_env(postgres_url, through(proxy, rabbitmq), flaky_receiver)
        )
        try:
            run_processes(relay, dispatcher)
            with InterviewLoad(rabbitmq, tenants, count=120, per_second=30) as load:
                load.wait_for_published(20)
                proxy.reset()
                load.wait_for_published(45)
                proxy.cut()
                time.sleep(1)
                proxy.restore()
                load.wait_for_published(75)
                proxy.stall()
                time.sleep(3)
                proxy.resume()
            time.sleep(0.3)  # the last interviews' first attempts are recorded, retries due
            proxy.reset()
            settle_and_check(application, load.published, rabbitmq, flaky_receiver, dispatcher)
            # The retries run in the dispatcher, so the deliveries may all end before it
            # is back after the last reset: started, back after the cut, back after it.
            wait_for(
                lambda: dispatcher.count("dispatcher: consuming") >= 3,
                30,
                "the dispatcher to consume again after the last reset",
            )
        finally:
            stop_processes(dispatcher, relay)
    assert proxy.counts.reset >= 2 and proxy.counts.cut >= 1, proxy.counts


# -- (c) SIGKILL --------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.rabbitmq
def test_a_dispatcher_killed_twice_mid_run_loses_no_delivery(
    postgres_url, rabbitmq, flaky_receiver, postgres_store
):
    """`tenzo dispatcher` is SIGKILLed twice while 120 interviews arrive (deliveries
    between attempts, saves and acks in flight) and started again each time. RabbitMQ
    redelivers what it held, the new process resumes those deliveries, and every one
    ends once, numbered 1..n. (Passes on the code of issue 12; a dispatcher that does
    not resume a delivery from a redelivered message fails it: 30 of 120 pending.)"""
    application = postgres_store
    tenants = Tenant.several(application, flaky_receiver.url, 40)
    env = process_env(postgres_url, rabbitmq, flaky_receiver)
    relay, dispatcher = TenzoProcess("relay", env), TenzoProcess("dispatcher", env)
    try:
        run_processes(relay, dispatcher)
        with InterviewLoad(rabbitmq, tenants, count=120, per_second=30) as load:
            for published in (35, 80):
                load.wait_for_published(published)
                dispatcher.kill()
                dispatcher.start()
        settle_and_check(application, load.published, rabbitmq, flaky_receiver, dispatcher)
    finally:
        stop_processes(dispatcher, relay)
    assert dispatcher.kills == 2


def test_a_dispatcher_killed_on_the_embedded_broker_resumes_every_pending_delivery(
    tmp_path, flaky_receiver
):
    """On the embedded broker (SQLite, one dispatcher), `tenzo dispatcher` is SIGKILLed
    once all 60 interviews are scheduled and many wait for their second attempt (2 s
    delays here); started again, it resumes every pending delivery from the event
    store, and every one ends once, numbered 1..n. (A message taken from the folder
    but not yet scheduled dies with the process: the embedded broker's documented
    limit, so the kill waits until all are scheduled.) Passes on the code of issue 12;
    a dispatcher that does not resume pending deliveries when it starts on the
    embedded broker fails it: 60 of 60 pending."""
    database_url = f"sqlite:///{tmp_path}/events.sqlite3"
    broker_url = f"filesystem://{tmp_path}/broker"
    env = process_env(database_url, broker_url, flaky_receiver, TENZO_WEBHOOK_RETRY_DELAYS="0,2,2")
    relay, dispatcher = TenzoProcess("relay", env), TenzoProcess("dispatcher", env)
    with open_store(database_url, flaky_receiver) as application:
        tenants = Tenant.several(application, flaky_receiver.url, 20)
        org_ids = {tenant.org_id for tenant in tenants}
        try:
            run_processes(relay, dispatcher)
            with InterviewLoad(broker_url, tenants, count=60, per_second=200) as load:
                pass
            statuses = wait_for(
                lambda: (found := delivery_statuses(application, org_ids)).total() == 60 and found,
                30,
                "every interview to be scheduled",
            )
            dispatcher.kill()
            assert statuses["pending"] >= 10, statuses  # killed while they wait for a retry
            dispatcher.start()
            settle_and_check(application, load.published, broker_url, flaky_receiver, dispatcher)
        finally:
            stop_processes(dispatcher, relay)
    assert dispatcher.count("resuming delivery") >= 10


def test_a_relay_killed_twice_mid_run_loses_no_test_event_or_interview(deployment, flaky_receiver):
    """`tenzo relay` is SIGKILLed twice (and started again at once) while 30 webhook
    test events are scheduled through the application — they reach the dispatcher
    only through the relay — and 60 interviews arrive. The relay publishes again from
    its saved position (at least once), and every delivery, test event or interview,
    ends once, numbered 1..n; on both brokers. (Passes on the code of issue 12; a relay
    that starts from the newest event instead of its saved position fails it: 12 to 17
    of 90 pending.)"""
    database_url, broker_url = deployment
    env = process_env(database_url, broker_url, flaky_receiver)
    relay, dispatcher = TenzoProcess("relay", env), TenzoProcess("dispatcher", env)
    test_events: Published = []
    with open_store(database_url, flaky_receiver) as application:
        tenants = Tenant.several(application, flaky_receiver.url, 20)
        try:
            run_processes(relay, dispatcher)
            with InterviewLoad(broker_url, tenants, count=60, per_second=30) as load:
                for number in range(30):
                    tenant = tenants[number % len(tenants)]
                    delivery = application.send_test_event(tenant.org_id, OPERATOR)
                    test_events.append((tenant.org_id, delivery.event_id))
                    if number in (8, 20):
                        relay.kill()
                        relay.launch()  # starts again while more events are recorded
                    time.sleep(0.06)
            relay.wait_ready()
            published = load.published + test_events
            settle_and_check(application, published, broker_url, flaky_receiver, relay, dispatcher)
        finally:
            stop_processes(dispatcher, relay)
    assert relay.kills == 2


# -- (d) two dispatchers --------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.rabbitmq
def test_two_dispatchers_under_faults_record_each_delivery_once(
    postgres_url, rabbitmq, flaky_receiver, postgres_store
):
    """Two `tenzo dispatcher` processes consume the same queue while 150 interviews
    arrive: the first one loses the reply to a group commit of 3 attempts or more (the
    server committed) and all its PostgreSQL connections are reset; the second one's
    RabbitMQ connection is reset twice (its messages go to the other one, redelivered,
    while it may still be sending them) and it is SIGKILLed and started again. Every
    delivery ends once, numbered 1..n, whoever finished it; duplicate POSTs are
    counted, not refused. Fails on the code of issue 12 through the first
    dispatcher's ambiguous commit, as (a) does (4 to 8 of 150 pending)."""
    application = postgres_store
    tenants = Tenant.several(application, flaky_receiver.url, 50)
    with proxy_for(postgres_url) as database, proxy_for(rabbitmq) as broker:
        relay = TenzoProcess("relay", process_env(postgres_url, rabbitmq, flaky_receiver))
        first = TenzoProcess(
            "dispatcher",
            process_env(through(database, postgres_url), rabbitmq, flaky_receiver),
            name="dispatcher-1",
        )
        second = TenzoProcess(
            "dispatcher",
            process_env(postgres_url, through(broker, rabbitmq), flaky_receiver),
            name="dispatcher-2",
        )

        try:
            run_processes(relay, first, second)
            # The first one's next two group commits of 3 attempts or more are lost (its
            # commits are smaller now that each organization's concurrency adapts).
            database.drop_reply_to(
                b"COMMIT", b"COMMIT", times=2, after=ATTEMPT_RECORDED, at_least=3
            )
            with InterviewLoad(rabbitmq, tenants, count=150, per_second=75) as load:
                load.wait_for_published(40)
                broker.reset()  # the second's messages go to the first, redelivered
                load.wait_for_published(70)
                second.kill()
                second.launch()
                load.wait_for_published(100)
                database.reset()
                second.wait_ready()
                broker.reset()
            database.disarm()
            print(database.counts, broker.counts)
            settle_and_check(application, load.published, rabbitmq, flaky_receiver, first, second)
        finally:
            stop_processes(first, second, relay)
    assert database.counts.dropped_replies >= 1 and database.counts.reset >= 2, database.counts
    assert broker.counts.reset >= 2 and second.kills == 1, broker.counts
