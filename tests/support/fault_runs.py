"""What the fault tests (tests/e2e/test_faults.py) share: real `tenzo` processes, a
producer's steady interview load, and the check of SPEC 11 on every delivery.

The promise checked (SPEC 11): every accepted ``interview.completed`` ends as exactly
one delivery record, ``succeeded`` or ``failed`` after all its attempts, on its own —
none stays ``pending`` — with attempt numbers 1..n, whatever happened to the processes
and their connections meanwhile. Duplicate POSTs (same ``X-Webhook-Id`` and attempt)
are allowed; they are counted, not refused.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pika
import pytest

from contracts.broker import DEFERRED_QUEUE, INTERVIEWS_QUEUE
from domain.actors import OPERATOR
from domain.application import DeveloperTools
from domain.deliveries import delivery_id
from domain.errors import NotFound
from tests.support.dispatching import (
    ENCRYPTION_KEY,
    interview_message,
    publish,
    queue_depth,
    wait_for,
)
from tests.support.https_receiver import HttpsReceiver, ReceivedRequest, ScriptedResponse
from tests.support.tcp_proxy import TcpProxy

TENZO = str(Path(sys.executable).with_name("tenzo"))
RETRY_DELAYS = (0, 0.5, 0.5)
# The margin after which a dispatcher finishes a pending delivery nobody works on
# (issue 12): small, so that a stranded delivery is healed within the test's wait.
STALLED_AFTER = 3
# What the dispatcher sends in every transaction that records an attempt: the event's
# topic, a parameter of the insert (statements are prepared, so their text is sent only
# the first times). drop_reply_to(b"COMMIT", b"COMMIT", after=ATTEMPT_RECORDED) loses
# the reply to the commit of delivery records, not of some other write.
ATTEMPT_RECORDED = b"domain.deliveries:Delivery.Attempted"


def first_attempt_fails(request: ReceivedRequest) -> ScriptedResponse:
    """500 to every attempt 1, 200 to the others: every delivery needs a retry, so a
    delivery whose first attempt was recorded and whose second never comes shows."""
    if request.headers.get("x-webhook-attempt") == "1":
        return ScriptedResponse(status=500, body=b"try again")
    return ScriptedResponse(status=200)


@pytest.fixture
def flaky_receiver(tmp_path: Any) -> Iterator[HttpsReceiver]:
    with HttpsReceiver(directory=tmp_path, respond=first_attempt_fails) as running:
        yield running


def process_env(
    database_url: str, broker_url: str, receiver: HttpsReceiver, **overrides: str
) -> dict[str, str]:
    """The environment of a `tenzo relay` or `tenzo dispatcher` under test."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "TENZO_DATABASE_URL": database_url,
        "TENZO_BROKER_URL": broker_url,
        "TENZO_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "TENZO_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
        "TENZO_WEBHOOK_CA_BUNDLE": receiver.ca_pem_path,
        "TENZO_WEBHOOK_RETRY_DELAYS": ",".join(str(delay) for delay in RETRY_DELAYS),
        "TENZO_WEBHOOK_TIMEOUT": "5",
        "TENZO_DISPATCHER_STALLED_AFTER": str(STALLED_AFTER),
    } | overrides


def through(proxy: TcpProxy, url: str) -> str:
    """``url`` (postgresql:// or amqp://) with its host and port those of the proxy."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{proxy.port}" if credentials else f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def proxy_for(url: str) -> TcpProxy:
    """A fault proxy in front of the server that ``url`` names (not started)."""
    parts = urlsplit(url)
    default = 5432 if parts.scheme.startswith("postgres") else 5672
    return TcpProxy((parts.hostname or "127.0.0.1", parts.port or default))


class TenzoProcess:
    """`tenzo relay` or `tenzo dispatcher` in a subprocess, its log kept across restarts."""

    READY = {"dispatcher": "dispatcher: consuming", "relay": "relay: publishing from"}

    def __init__(self, command: str, env: dict[str, str], name: str | None = None):
        self.command = command
        self.env = env
        self.name = name or command
        self.lines: list[str] = []  # every run's log, in order
        self.starts = 0
        self.kills = 0
        self._first_line = 0
        self.process: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 30) -> TenzoProcess:
        """Start it and wait until it works (consuming, or publishing)."""
        return self.launch().wait_ready(timeout)

    def launch(self) -> TenzoProcess:
        """Start it without waiting (start several, then ``wait_ready`` each)."""
        self._first_line = len(self.lines)
        self.process = subprocess.Popen(
            [TENZO, self.command],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.starts += 1
        threading.Thread(target=self._collect, args=(self.process,), daemon=True).start()
        return self

    def wait_ready(self, timeout: float = 30) -> TenzoProcess:
        ready, first_line = self.READY[self.command], self._first_line
        wait_for(
            lambda: any(ready in line for line in self.lines[first_line:]),
            timeout,
            f"{self.name} to start",
        )
        return self

    def _collect(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            self.lines.append(f"[{self.name}] {line}")

    def kill(self) -> None:
        """SIGKILL: nothing is flushed, acked or saved on the way out."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.kills += 1

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def count(self, text: str) -> int:
        return sum(1 for line in self.lines if text in line)


@dataclass
class Tenant:
    """An organization with an enabled webhook to the receiver, a job and a candidate."""

    org_id: uuid.UUID
    job_id: uuid.UUID
    candidate_id: uuid.UUID

    @classmethod
    def create(cls, application: DeveloperTools, webhook_url: str) -> Tenant:
        organization, _ = application.create_organization(f"Org {uuid.uuid4().hex[:6]}", OPERATOR)
        application.configure_webhook(organization.id, webhook_url, "whsec-faults", True, OPERATOR)
        job, _ = application.upsert_job(organization.id, {"title": "Backend engineer"}, OPERATOR)
        candidate, _ = application.upsert_candidate(
            organization.id,
            {"job_id": job.id, "first_name": "Ada", "last_name": "L", "email": "ada@example.com"},
            OPERATOR,
        )
        return cls(organization.id, job.id, candidate.id)

    @classmethod
    def several(cls, application: DeveloperTools, webhook_url: str, count: int) -> list[Tenant]:
        return [cls.create(application, webhook_url) for _ in range(count)]

    def interview(self) -> dict[str, Any]:
        message = interview_message(self.org_id)
        message["data"] |= {"candidate_id": str(self.candidate_id), "job_id": str(self.job_id)}
        return message


Published = list[tuple[uuid.UUID, str]]  # (organization, event id) of each interview


class InterviewLoad:
    """A producer publishing ``count`` interviews at ``per_second``, in a thread of its
    own, for each tenant in turn: with pika and publisher confirms on RabbitMQ
    (straight to the broker, never through a test's proxy), as `tenzo
    publish-interview` does on the embedded broker. ``published`` holds those the
    broker accepted.

    Several tenants, because an organization whose attempts wait for an answer counts
    as hanging, and a hanging organization's surplus is set aside for 30 s
    (docs/dispatcher.md, isolation): spread over tenants, the load keeps flowing
    through a fault."""

    def __init__(self, broker_url: str, tenants: list[Tenant], count: int, per_second: float):
        self.broker_url = broker_url
        self.tenants = tenants
        self.count = count
        self.per_second = per_second
        self.published: Published = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> InterviewLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.join()

    def join(self, timeout: float = 120) -> Published:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the producer did not finish"
        assert self.error is None, f"the producer failed: {self.error!r}"
        assert len(self.published) == self.count
        return self.published

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait_for_published(self, count: int, timeout: float = 60) -> None:
        wait_for(lambda: len(self.published) >= count, timeout, f"{count} interviews published")

    def _run(self) -> None:
        try:
            if self.broker_url.startswith("amqp"):
                self._publish_with_pika()
            else:
                self._paced(lambda message: publish(self.broker_url, message))
        except BaseException as error:  # noqa: BLE001 - reported by join()
            self.error = error

    def _publish_with_pika(self) -> None:
        connection = pika.BlockingConnection(pika.URLParameters(self.broker_url))
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            properties = pika.BasicProperties(content_type="application/json", delivery_mode=2)
            self._paced(
                lambda message: channel.basic_publish(
                    exchange="tenzo.events",
                    routing_key="interview.completed",
                    body=json.dumps(message).encode(),
                    properties=properties,
                    mandatory=True,  # unroutable would raise: nothing silently dropped
                )
            )
        finally:
            connection.close()

    def _paced(self, send: Any) -> None:
        started = time.monotonic()
        for index in range(self.count):
            pause = started + index / self.per_second - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            tenant = self.tenants[index % len(self.tenants)]
            message = tenant.interview()
            send(message)  # returns once confirmed (RabbitMQ) or written (embedded)
            self.published.append((tenant.org_id, message["event_id"]))


# -- the check -------------------------------------------------------------------------


def delivery_statuses(application: DeveloperTools, org_ids: set[uuid.UUID]) -> Counter[str]:
    """How many of the organizations' deliveries are in each status (the catalog)."""
    found: Counter[str] = Counter()
    for org_id in org_ids:
        application.catalog.wait_for_writes(org_id)
        for status in ("pending", "succeeded", "failed"):
            found[status] += len(
                application.catalog.aggregate_ids(org_id, "Delivery", limit=100_000, status=status)
            )
    return found


def waiting_messages(broker_url: str) -> int:
    """Interview messages waiting on RabbitMQ: ready in the dispatchers' queue, or set
    aside on the deferred queue (they come back when their 30 s expire)."""
    if not broker_url.startswith("amqp"):
        return 0
    return sum(queue_depth(broker_url, name) for name in (INTERVIEWS_QUEUE, DEFERRED_QUEUE))


def wait_until_settled(
    application: DeveloperTools,
    published: Published,
    broker_url: str,
    quiet: float = 15,
    cap: float = 60,
) -> float:
    """Wait until the deliveries of what was published have ended; or until nothing has changed for
    ``quiet`` seconds (longer than a dispatcher takes to notice a stranded delivery,
    STALLED_AFTER, and finish it) while no interview message waits on the broker; or
    ``cap`` seconds. The caller checks what it finds. Returns the seconds waited."""
    org_ids, expected = {org_id for org_id, _ in published}, len(published)
    started = time.monotonic()
    last: tuple[Counter[str], int] | None = None
    changed_at = started
    while True:
        statuses = delivery_statuses(application, org_ids)
        now = time.monotonic()
        if statuses["succeeded"] + statuses["failed"] >= expected and not statuses["pending"]:
            return now - started
        state = (statuses, waiting_messages(broker_url))
        if state != last or state[1]:
            last, changed_at = state, now
        if now - changed_at > quiet or now - started > cap:
            return now - started
        time.sleep(0.25)


@dataclass
class DeliveryReport:
    """What became of each published interview, read from the event store."""

    published: int
    records: int  # the organization's Delivery aggregates in the catalog
    statuses: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)  # no delivery record
    pending: list[str] = field(default_factory=list)
    failed_early: list[str] = field(default_factory=list)  # failed before its last attempt
    misnumbered: list[str] = field(default_factory=list)  # attempts not numbered 1..n
    posts: int = 0
    duplicate_posts: int = 0  # POSTs of an (event, attempt) already POSTed

    def problems(self) -> list[str]:
        found = []
        if self.records != self.published:
            found.append(f"{self.records} delivery records for {self.published} interviews")
        for name in ("lost", "pending", "failed_early", "misnumbered"):
            ids = getattr(self, name)
            if ids:
                found.append(f"{len(ids)} of {self.published} {name}: {ids[:3]}")
        return found

    def __str__(self) -> str:
        return (
            f"{self.published} published, {self.records} records "
            f"({dict(self.statuses)}), {len(self.lost)} lost, {len(self.pending)} pending, "
            f"{len(self.failed_early)} failed early, {len(self.misnumbered)} misnumbered; "
            f"{self.posts} POSTs, {self.duplicate_posts} duplicate"
        )


def check_deliveries(
    application: DeveloperTools,
    published: Published,
    receiver: HttpsReceiver,
    attempts: int = len(RETRY_DELAYS),
) -> DeliveryReport:
    """Read every published event's delivery from the event store (and count the
    organizations' delivery records in the catalog)."""
    statuses = delivery_statuses(application, {org_id for org_id, _ in published})
    report = DeliveryReport(published=len(published), records=sum(statuses.values()))
    report.statuses = statuses
    for org_id, event_id in published:
        try:
            delivery = application.get_delivery(org_id, delivery_id(org_id, event_id))
        except NotFound:
            report.lost.append(event_id)
            continue
        numbers = [attempt["number"] for attempt in delivery.attempts]
        if numbers != list(range(1, len(numbers) + 1)):
            report.misnumbered.append(event_id)
        if delivery.status == "pending":
            report.pending.append(event_id)
        elif delivery.status == "failed" and delivery.attempts_in_series < attempts:
            report.failed_early.append(event_id)
    sent = Counter(
        (request.headers.get("x-webhook-id"), request.headers.get("x-webhook-attempt"))
        for request in receiver.requests
    )
    report.posts = sum(sent.values())
    report.duplicate_posts = sum(count - 1 for count in sent.values())
    return report


def assert_each_delivered_once(report: DeliveryReport, *processes: TenzoProcess) -> None:
    """SPEC 11: every interview one delivery, ended on its own, numbered 1..n."""
    print(report)  # shown with -rA or on failure: the figures of the run
    problems = report.problems()
    if problems:
        tail = "".join(line for process in processes for line in process.lines[-15:])
        raise AssertionError(f"{'; '.join(problems)}\n{report}\n--- last log lines ---\n{tail}")
