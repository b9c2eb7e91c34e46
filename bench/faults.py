"""Faults and a soak (issue 12, item 5): SPEC 11 checked on real processes, for longer
than a test can run.

Set-up: a fresh PostgreSQL database with ``--orgs`` organizations (a webhook, a job and
a candidate each), a fresh RabbitMQ virtual host, `tenzo relay` and two
`tenzo dispatcher` processes; each dispatcher's PostgreSQL and RabbitMQ connections go
through fault proxies of its own (tests/support/tcp_proxy.py, threads of this process).
An HTTPS receiver process (trustme CA) records every POST (event id, attempt) and answers
500 to every attempt of ``--fail-always`` of the events (2 %), 500 to the first attempt
of ``--fail-first`` of them (30 %), 200 otherwise. Retry delays 0, 1, 2 s, webhook
timeout 5 s, TENZO_DISPATCHER_STALLED_AFTER 10 s: retries, failures and the sweeper's
healing all happen within the run. Interviews are published with pika (publisher
confirms, straight to RabbitMQ) from this process.

1. Fault run: ``--interviews`` (2,000) published at ``--rate`` (25/s) across the
   organizations while ``--faults`` (24) faults hit at random moments (seeded RNG; the
   seed is printed): a dispatcher's PostgreSQL connections cut, reset, stalled, or a
   COMMIT's reply dropped (the commit happens, the dispatcher cannot know it did); its
   RabbitMQ connection cut, reset or stalled; a dispatcher or the relay SIGKILLed and
   restarted; a dispatcher SIGSTOPped for longer than the stalled margin, then SIGCONT.
2. Soak: ``--soak-seconds`` (600) at ``--soak-rate`` (40/s) with a connection fault
   about every minute (no kills, so that each process's memory can be followed): RSS
   of each process every 10 s, growth after ``--warmup-seconds`` (120), WARNING/ERROR
   log lines per process, publish-to-receive latency per minute.

After each part, once no delivery is pending and the queues are empty (bounded by
``--drain-timeout``), the event store is read through the application (the
notification log's Delivery events, decoded) and every published event id must have
exactly one delivery record, ``succeeded``, or ``failed`` after all its attempts, with
attempts numbered 1..n: 0 lost, 0 duplicate records, 0 stranded. Duplicate POSTs are
allowed (SPEC 11) and counted. Results go into docs/reliability.md between this
script's markers (unless ``--no-docs``); the exit status is 1 when a target is missed.

Run: `.venv/bin/python bench/faults.py` (PostgreSQL from TENZO_BENCH_POSTGRES_URL,
RabbitMQ from TENZO_BENCH_AMQP_URL; the virtual host is made with rabbitmqctl).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import math
import multiprocessing
import os
import random
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pika
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.dispatch import (  # noqa: E402
    POSTGRES_URL,
    TENZO,
    Org,
    drop_vhost,
    machine,
    make_vhost,
    message,
    populate,
    write_docs,
)
from contracts.broker import DEAD_LETTER_QUEUE, DEFERRED_QUEUE, INTERVIEWS_QUEUE  # noqa: E402
from services.dispatcher.sweeper import DELIVERY_TOPICS  # noqa: E402
from tests.support.fault_runs import proxy_for, through  # noqa: E402
from tests.support.tcp_proxy import TcpProxy  # noqa: E402

DOCS = ROOT / "docs" / "reliability.md"
MARKERS = ("<!-- bench/faults.py:start -->", "<!-- bench/faults.py:end -->")
COMMAND = ".venv/bin/python bench/faults.py"
RETRY_DELAYS = (0.0, 1.0, 2.0)
WEBHOOK_TIMEOUT = 5.0
STALLED_AFTER = 10.0
MEMORY_GROWTH_TARGET = 0.10
RSS_EVERY = 10.0
# What the dispatcher's Committer logs when a save whose COMMIT reply was lost turns out
# to be stored (it saves again, conflicts, finds its own events): the ambiguous commits.
RESOLVED_COMMIT = "had gone through"
# The warning a dispatcher logs for a delivery that failed every attempt: planned here
# for --fail-always of the events, so counted apart from the others.
PLANNED_FAILURE = re.compile(r"delivery \S+ \(organization \S+\): \d+ attempts failed")
_PRINT = threading.Lock()


def say(text: str) -> None:
    """Print a line whole, whichever thread prints (progress, faults)."""
    with _PRINT:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


# -- the receiver (a process of its own) -------------------------------------------------


def planned_status(seed: int, event_id: str, attempt: int, policy: tuple[float, float]) -> int:
    """What the receiver answers to ``attempt`` of ``event_id``: the same for every copy
    of a POST, so duplicates meet the same answer (``policy``: fail first, fail always)."""
    fail_first, fail_always = policy
    digest = hashlib.sha256(f"{seed}:{event_id}".encode()).digest()
    draw = int.from_bytes(digest[:8], "big") / 2**64
    if draw < fail_always or (attempt == 1 and draw < fail_always + fail_first):
        return 500
    return 200


def run_receiver(
    cert: str, key: str, seed: int, policy: tuple[float, float], port_out: Any, posts: Any
) -> None:
    """An asyncio HTTPS/1.1 keep-alive server answering as ``planned_status`` says; sends
    (event id, attempt, status, receive time) of every POST to ``posts`` in batches."""
    batch: list[tuple[str, int, int, float]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readline():  # the request line
                headers = {}
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                await reader.readexactly(int(headers.get("content-length", "0")))
                event_id = headers.get("x-webhook-id", "")
                attempt = int(headers.get("x-webhook-attempt", "0"))
                status = planned_status(seed, event_id, attempt, policy)
                batch.append((event_id, attempt, status, time.time()))
                reason = b"OK" if status == 200 else b"Internal Server Error"
                writer.write(b"HTTP/1.1 %d %s\r\nContent-Length: 2\r\n\r\nok" % (status, reason))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, ValueError):
            return
        finally:
            writer.close()

    async def flush() -> None:
        while True:
            await asyncio.sleep(0.05)
            if batch:
                posts.put(list(batch))
                batch.clear()

    async def serve() -> None:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(cert, key)
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls, backlog=1024)
        port_out.put(server.sockets[0].getsockname()[1])
        asyncio.get_running_loop().create_task(flush())
        await server.serve_forever()

    asyncio.run(serve())


@dataclass(frozen=True)
class Post:
    event_id: str
    attempt: int
    status: int
    at: float


class Posts:
    """Every POST the receiver saw, collected from its process by a thread."""

    def __init__(self, queue: Any):
        self.queue = queue
        self.lock = threading.Lock()
        self.all: list[Post] = []
        self.first: dict[str, float] = {}  # event id -> its first POST
        self.delivered: dict[str, float] = {}  # event id -> its first POST answered 200
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        while True:
            batch = [Post(*item) for item in self.queue.get()]
            with self.lock:
                for post in batch:
                    self.all.append(post)
                    self.first.setdefault(post.event_id, post.at)
                    if post.status == 200:
                        self.delivered.setdefault(post.event_id, post.at)

    def of(self, event_ids: Iterable[str]) -> list[Post]:
        wanted = set(event_ids)
        with self.lock:
            return [post for post in self.all if post.event_id in wanted]


# -- the processes -------------------------------------------------------------------------


class TenzoProcess:
    """`tenzo relay` or `tenzo dispatcher` in a subprocess; its output (every run of it)
    goes to one log file. ``lock`` is held while the bench kills, stops or restarts it,
    so that ``check_alive`` tells a crash from a fault."""

    READY = {"dispatcher": "dispatcher: consuming from", "relay": "relay: publishing from"}

    def __init__(self, name: str, command: str, env: dict[str, str], log_path: Path):
        self.name, self.command, self.env, self.log_path = name, command, env, log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.lock = threading.RLock()
        self.unexpected_exits: list[str] = []

    def start(self, timeout: float = 90) -> float:
        """Start it and wait until it consumes (or publishes); returns the seconds taken."""
        with self.lock:
            started = time.monotonic()
            offset = self.log_size()
            with self.log_path.open("ab") as log:
                log.write(f"=== bench: starting {self.name} at {now_text()} ===\n".encode())
                log.flush()
                self.process = subprocess.Popen(
                    [TENZO, self.command], env=self.env, stdout=log, stderr=subprocess.STDOUT
                )
            while self.READY[self.command] not in "".join(self.log_lines(offset)):
                if self.process.poll() is not None:
                    raise SystemExit(f"{self.name} exited at start; see {self.log_path}")
                if time.monotonic() - started > timeout:
                    raise SystemExit(f"{self.name} not ready after {timeout:.0f} s")
                time.sleep(0.1)
            return time.monotonic() - started

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL: nothing is flushed, acked or saved on the way out."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGCONT)  # a stopped process cannot handle SIGTERM
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def check_alive(self) -> None:
        """Restart it if it exited without the bench killing it (noted for the report)."""
        with self.lock:
            if self.process is None or (code := self.process.poll()) is None:
                return
            note = f"{self.name} (pid {self.process.pid}) exited with {code} at {now_text()}"
            say(f"  !! {note}; restarting it")
            self.unexpected_exits.append(note)
            self.start()

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_lines(self, offset: int = 0) -> list[str]:
        if not self.log_path.exists():
            return []
        with self.log_path.open("rb") as log:
            log.seek(offset)
            data = log.read()
        return data.decode("utf-8", "replace").splitlines(keepends=True)


@dataclass
class Dispatcher:
    """A `tenzo dispatcher` whose PostgreSQL and RabbitMQ connections go through proxies."""

    process: TenzoProcess
    pg: TcpProxy
    amqp: TcpProxy


def set_up_processes(
    workdir: Path,
    env: dict[str, str],
    database_url: str,
    amqp_url: str,
    proxies: contextlib.ExitStack,
    processes: list[TenzoProcess],
) -> tuple[TenzoProcess, list[Dispatcher]]:
    """`tenzo relay` (direct connections) and two `tenzo dispatcher` (through proxies),
    started and ready; each is in ``processes`` before it starts (to be stopped)."""
    relay = TenzoProcess("relay", "relay", env, workdir / "relay.log")
    dispatchers = []
    for index in (1, 2):
        pg = proxies.enter_context(proxy_for(database_url))
        amqp = proxies.enter_context(proxy_for(amqp_url))
        proxied = env | {
            "TENZO_DATABASE_URL": through(pg, database_url),
            "TENZO_BROKER_URL": through(amqp, amqp_url),
        }
        name = f"dispatcher {index}"
        process = TenzoProcess(name, "dispatcher", proxied, workdir / f"dispatcher-{index}.log")
        dispatchers.append(Dispatcher(process, pg, amqp))
    processes += [relay, *(dispatcher.process for dispatcher in dispatchers)]
    for process in processes:
        process.start()
    return relay, dispatchers


def now_text() -> str:
    return datetime.now(UTC).strftime("%H:%M:%S")


# -- the load ------------------------------------------------------------------------------


class Load:
    """Publishes ``count`` interviews at a steady ``rate`` from a thread, with pika and
    publisher confirms (``mandatory``: unroutable would raise), to random organizations.
    ``sent``: event id -> (organization id, publish time) of every confirmed message."""

    def __init__(self, amqp_url: str, orgs: list[Org], rate: float, rng: random.Random, count: int):
        self.amqp_url, self.orgs, self.rate, self.rng, self.count = amqp_url, orgs, rate, rng, count
        self.sent: dict[str, tuple[str, float]] = {}
        self.started = self.ended = 0.0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Load:
        self.started = time.time()
        self._thread.start()
        return self

    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            connection = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
            channel = connection.channel()
            channel.confirm_delivery()
            properties = pika.BasicProperties(content_type="application/json", delivery_mode=2)
            started = time.monotonic()
            for index in range(self.count):
                pause = started + index / self.rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                org = self.rng.choice(self.orgs)
                event_id, body = message(org)
                at = time.time()
                channel.basic_publish(
                    "tenzo.events", "interview.completed", body, properties, mandatory=True
                )
                self.sent[event_id] = (str(org.id), at)
            connection.close()
        except BaseException as error:  # noqa: BLE001 - reported by the run
            self.error = error
        finally:
            self.ended = time.time()


# -- faults --------------------------------------------------------------------------------

FAULT_KINDS = {
    "pg-cut": "PostgreSQL connections of dispatcher {d} cut (FIN both ways; new ones "
    "refused) for {s:.1f} s",
    "pg-reset": "PostgreSQL connections of dispatcher {d} reset (RST)",
    "pg-stall": "PostgreSQL connections of dispatcher {d} stalled (no byte forwarded) for "
    "{s:.1f} s",
    "pg-commit": "the reply to the next COMMIT of dispatcher {d} dropped (it commits; the "
    "client sees its connection reset)",
    "amqp-cut": "RabbitMQ connection of dispatcher {d} cut (new ones refused) for {s:.1f} s",
    "amqp-reset": "RabbitMQ connection of dispatcher {d} reset (RST)",
    "amqp-stall": "RabbitMQ connection of dispatcher {d} stalled for {s:.1f} s",
    "dispatcher-kill": "dispatcher {d} SIGKILLed, restarted {s:.1f} s later",
    "relay-kill": "the relay SIGKILLed, restarted {s:.1f} s later",
    "dispatcher-stop": "dispatcher {d} SIGSTOPped for {s:.1f} s (longer than the stalled "
    "margin), then SIGCONT",
}
CONNECTION_FAULTS = [kind for kind in FAULT_KINDS if kind.startswith(("pg-", "amqp-"))]


@dataclass
class Fault:
    at: float  # planned: seconds after the part started
    kind: str
    dispatcher: int  # 1 or 2 (ignored by the relay's fault)
    seconds: float  # how long it lasts (cut, stall, stop; the restart delay of a kill)
    started: float = 0.0  # wall clock, when carried out
    ended: float = 0.0
    effect: str = ""

    def describe(self) -> str:
        return FAULT_KINDS[self.kind].format(d=self.dispatcher, s=self.seconds)


def fault_seconds(kind: str, rng: random.Random) -> float:
    if kind in ("pg-cut", "amqp-cut"):
        return rng.uniform(1.0, 3.0)
    if kind in ("pg-stall", "amqp-stall"):
        return rng.uniform(2.0, 5.0)
    if kind.endswith("-kill"):
        return rng.uniform(0.5, 3.0)
    if kind == "dispatcher-stop":
        return STALLED_AFTER + max(RETRY_DELAYS) + rng.uniform(3.0, 6.0)
    return 0.0


def plan_faults(rng: random.Random, count: int, window: float) -> list[Fault]:
    """``count`` faults at random moments of ``window`` seconds: every kind once when
    there are enough, then kinds drawn at random (the long SIGSTOP only once)."""
    kinds = list(FAULT_KINDS)
    if count <= len(kinds):
        chosen = rng.sample(kinds, count)
    else:
        repeatable = [kind for kind in kinds if kind != "dispatcher-stop"]
        chosen = kinds + [rng.choice(repeatable) for _ in range(count - len(kinds))]
        rng.shuffle(chosen)
    moments = sorted(rng.uniform(2.0, max(window, 3.0)) for _ in chosen)
    return [
        Fault(at, kind, rng.choice((1, 2)), fault_seconds(kind, rng))
        for at, kind in zip(moments, chosen, strict=True)
    ]


def plan_soak_faults(rng: random.Random, seconds: float, every: float = 60.0) -> list[Fault]:
    """A connection fault about every ``every`` seconds (no kills: memory is followed)."""
    faults, at = [], every / 2
    while at < seconds - 10:
        kind = rng.choice(CONNECTION_FAULTS)
        faults.append(Fault(at, kind, rng.choice((1, 2)), fault_seconds(kind, rng)))
        at += every + rng.uniform(-10.0, 10.0)
    return faults


class Injector:
    """Carries out planned faults one after the other, from a thread, each at its moment
    (or as soon as the previous one has ended, when that is later)."""

    def __init__(self, dispatchers: list[Dispatcher], relay: TenzoProcess, faults: list[Fault]):
        self.dispatchers, self.relay, self.faults = dispatchers, relay, faults
        self.origin = 0.0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self, origin: float) -> Injector:
        self.origin = origin
        self._thread.start()
        return self

    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def last_ended(self) -> float:
        return max((fault.ended for fault in self.faults if fault.ended), default=0.0)

    def _run(self) -> None:
        try:
            for fault in self.faults:
                time.sleep(max(self.origin + fault.at - time.time(), 0))
                fault.started = time.time()
                fault.effect = self.apply(fault)
                fault.ended = time.time()
                say(f"  {fault.started - self.origin:5.1f} s: {fault.describe()}: {fault.effect}")
        except BaseException as error:  # noqa: BLE001 - reported by the run
            self.error = error

    def apply(self, fault: Fault) -> str:
        target = self.dispatchers[fault.dispatcher - 1]
        if fault.kind == "pg-commit":
            return self._drop_commit_reply(target.pg)
        if fault.kind.startswith(("pg-", "amqp-")):
            proxy = target.pg if fault.kind.startswith("pg-") else target.amqp
            return self._connection_fault(proxy, fault.kind.split("-", 1)[1], fault.seconds)
        if fault.kind == "dispatcher-kill":
            return self._kill(target.process, fault.seconds)
        if fault.kind == "relay-kill":
            return self._kill(self.relay, fault.seconds)
        if fault.kind == "dispatcher-stop":
            return self._pause(target.process, fault.seconds)
        raise ValueError(fault.kind)

    @staticmethod
    def _connection_fault(proxy: TcpProxy, kind: str, seconds: float) -> str:
        cut, reset = proxy.counts.cut, proxy.counts.reset
        if kind == "reset":
            proxy.reset()
            return f"{plural(proxy.counts.reset - reset, 'connection')} reset"
        if kind == "cut":
            proxy.cut()
            time.sleep(seconds)
            proxy.restore()
            cut = proxy.counts.cut - cut
            return f"{plural(cut, 'connection')} cut, new ones refused for {seconds:.1f} s"
        stalled = proxy.open_connections
        proxy.stall()
        time.sleep(seconds)
        proxy.resume()
        return f"{plural(stalled, 'connection')} stalled for {seconds:.1f} s"

    @staticmethod
    def _drop_commit_reply(proxy: TcpProxy, timeout: float = 15.0) -> str:
        before = proxy.counts.dropped_replies
        # Reads end in ROLLBACK (eventsourcing's force_rollback): a COMMIT is a write, a
        # save of events nearly always; the reply dropped is the server's "COMMIT" (it
        # did commit). (An ``after=`` marker would not work here: the statements are
        # prepared, their text crosses the wire once per connection.)
        proxy.drop_reply_to(b"COMMIT", b"COMMIT")
        deadline = time.time() + timeout
        while proxy.counts.dropped_replies == before and time.time() < deadline:
            time.sleep(0.05)
        proxy.disarm()
        if proxy.counts.dropped_replies == before:
            return f"no COMMIT within {timeout:.0f} s (the trap was removed)"
        return "PostgreSQL committed; its COMMIT reply was dropped, the connection reset"

    @staticmethod
    def _kill(process: TenzoProcess, down: float) -> str:
        with process.lock:
            pid = process.pid
            process.kill()
            time.sleep(down)
            ready = process.start()
            return f"pid {pid} killed; restarted as pid {process.pid}, ready {ready:.1f} s later"

    @staticmethod
    def _pause(process: TenzoProcess, seconds: float) -> str:
        with process.lock:
            process.signal(signal.SIGSTOP)
            try:
                time.sleep(seconds)
            finally:
                process.signal(signal.SIGCONT)
        return f"pid {process.pid} stopped for {seconds:.1f} s, then continued"


# -- the event store's view ----------------------------------------------------------------


@dataclass
class History:
    """One Delivery aggregate's events, as read from the notification log."""

    org_id: str = ""
    event_id: str = ""
    scheduled: int = 0
    attempts: list[int] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # for reports

    @property
    def status(self) -> str:
        return self.outcomes[-1] if self.outcomes else "pending"


class Histories:
    """Every delivery's history, following the event store's notification log (Delivery
    events only) through the application, as any reader of the store would."""

    def __init__(self, application: Any):
        self.application = application
        self.position = 0
        self.by_id: dict[Any, History] = {}
        self.by_event: dict[str, list[History]] = defaultdict(list)

    def follow(self) -> None:
        while True:
            notifications = self.application.recorder.select_notifications(
                start=self.position + 1, limit=1000, topics=DELIVERY_TOPICS
            )
            for notification in notifications:
                self._apply(self.application.mapper.to_domain_event(notification))
                self.position = notification.id
            if len(notifications) < 1000:
                return

    def _apply(self, event: Any) -> None:
        history = self.by_id.setdefault(event.originator_id, History())
        name = type(event).__name__
        detail = ""
        if name == "Scheduled":
            history.scheduled += 1
            history.org_id, history.event_id = str(event.org_id), event.event_id
            self.by_event[event.event_id].append(history)
        elif name == "Attempted":
            history.attempts.append(event.number)
            detail = f"number {event.number}, status {event.status_code}, error {event.error}"
        elif name in ("Succeeded", "Failed"):
            history.outcomes.append(name.lower())
            detail = getattr(event, "reason", "")
        elif name == "Resumed":
            history.resumed.append(event.reason)
            detail = event.reason
        history.lines.append(
            f"v{event.originator_version} {event.timestamp:%H:%M:%S.%f} {name} {detail}".rstrip()
        )

    def ended(self, event_ids: Iterable[str]) -> int:
        return sum(
            1
            for event_id in event_ids
            if (found := self.by_event.get(event_id)) and found[0].status != "pending"
        )


class Queues:
    """The virtual host's queues as rabbitmqctl lists them; remembers the most messages
    seen set aside at once (a slow organization's surplus, back after 30 s)."""

    def __init__(self, vhost: str):
        self.vhost = vhost
        self.deferred_peak = 0

    def messages(self) -> dict[str, int]:
        """Messages in each queue, ready or held unacknowledged by a consumer."""
        listed = subprocess.run(
            ["rabbitmqctl", "-q", "list_queues", "-p", self.vhost, "name", "messages"]
            + ["--no-table-headers"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        counts = {}
        for line in listed.splitlines():
            name, _, count = line.rpartition("\t")
            if name:
                counts[name] = int(count)
        self.deferred_peak = max(self.deferred_peak, counts.get(DEFERRED_QUEUE, 0))
        return counts


def wait_drained(
    histories: Histories,
    event_ids: list[str],
    queues: Queues,
    timeout: float,
    processes: list[TenzoProcess],
) -> float | None:
    """Wait until every event has an ended delivery and no interview message waits
    (ready, held or deferred); the time that happened, or None after ``timeout``."""
    started = time.time()
    next_report = started + 10
    while True:
        for process in processes:
            process.check_alive()
        histories.follow()
        ended = histories.ended(event_ids)
        counts = queues.messages()
        waiting = counts.get(INTERVIEWS_QUEUE, 0) + counts.get(DEFERRED_QUEUE, 0)
        if ended == len(event_ids) and not waiting:
            return time.time()
        if time.time() - started > timeout:
            return None
        if time.time() > next_report:
            next_report += 10
            say(f"  … {ended} of {len(event_ids)} deliveries ended, {waiting} messages queued")
        time.sleep(1)


# -- the checks ----------------------------------------------------------------------------


@dataclass
class Outcome:
    """What became of one part's published interviews (SPEC 11's figures)."""

    published: int
    records: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)  # published, no delivery record
    duplicates: list[str] = field(default_factory=list)  # a record, outcome or attempt twice
    stranded: list[str] = field(default_factory=list)  # still pending
    misnumbered: list[str] = field(default_factory=list)  # attempts not numbered 1..n
    failed_early: list[str] = field(default_factory=list)  # failed before its last attempt
    failed_unplanned: list[str] = field(default_factory=list)  # failed; the receiver said 200
    posts: int = 0
    recorded_attempts: int = 0
    duplicate_posts: int = 0  # POSTs of an (event id, attempt) already POSTed
    duplicated: list[tuple[str, int, int]] = field(default_factory=list)  # (id, attempt, n)
    unrecorded_posts: int = 0  # (event id, attempt) POSTed, no such attempt recorded
    unrecorded_noted: int = 0  # ... of deliveries with a DeliveryResumed (which warns of it)
    resumed: Counter[str] = field(default_factory=Counter)  # DeliveryResumed by reason
    resumed_deliveries: int = 0
    dead_lettered: int = 0
    deferred_peak: int = 0  # the most messages set aside at once (sampled every few s)
    resolved_commits: int = 0  # the Committer's "had gone through" (ambiguous commits)
    drained_after_fault: float | None = None
    drained_after_publish: float | None = None
    latency_first_ms: list[float] = field(default_factory=list)
    latency_delivered_ms: list[float] = field(default_factory=list)

    def problems(self) -> list[str]:
        found = [
            f"{len(ids)} {name}"
            for name, ids in (
                ("lost", self.lost),
                ("duplicate records", self.duplicates),
                ("stranded (pending)", self.stranded),
                ("with attempts not numbered 1..n", self.misnumbered),
                ("failed before their last attempt", self.failed_early),
            )
            if ids
        ]
        if self.drained_after_publish is None:
            found.append("not drained within the time allowed")
        return found

    def suspects(self) -> list[str]:
        """Event ids worth a look when something is wrong."""
        return [*self.lost, *self.duplicates, *self.stranded, *self.misnumbered, *self.failed_early]


def check(
    sent: dict[str, tuple[str, float]],
    histories: Histories,
    posts: Posts,
    seed: int,
    policy: tuple[float, float],
) -> Outcome:
    """Each published event's delivery, as the event store has it, and the POSTs."""
    histories.follow()
    outcome = Outcome(published=len(sent))
    recorded: dict[str, set[int]] = {}
    for event_id in sent:
        found = histories.by_event.get(event_id, [])
        if not found:
            outcome.lost.append(event_id)
            continue
        outcome.records += len(found)
        history = found[0]
        recorded[event_id] = set(history.attempts)
        outcome.statuses[history.status] += 1
        outcome.recorded_attempts += len(history.attempts)
        if history.resumed:
            outcome.resumed_deliveries += 1
            outcome.resumed.update(resume_kind(reason) for reason in history.resumed)
        if (
            len(found) > 1
            or history.scheduled != 1
            or len(history.outcomes) > 1
            or len(recorded[event_id]) != len(history.attempts)
        ):
            outcome.duplicates.append(event_id)
        if history.attempts != list(range(1, len(history.attempts) + 1)):
            outcome.misnumbered.append(event_id)
        if history.status == "pending":
            outcome.stranded.append(event_id)
        elif history.status == "failed" and len(history.attempts) < len(RETRY_DELAYS):
            outcome.failed_early.append(event_id)
        elif history.status == "failed" and planned_status(seed, event_id, 3, policy) == 200:
            outcome.failed_unplanned.append(event_id)
    seen = Counter((post.event_id, post.attempt) for post in posts.of(sent))
    outcome.posts = sum(seen.values())
    outcome.duplicate_posts = sum(count - 1 for count in seen.values())
    outcome.duplicated = [(*key, count) for key, count in seen.items() if count > 1]
    for event_id, attempt in seen:
        if attempt not in recorded.get(event_id, ()):
            outcome.unrecorded_posts += 1
            stored = histories.by_event.get(event_id)
            outcome.unrecorded_noted += bool(stored and stored[0].resumed)
    with posts.lock:
        for event_id, (_, published_at) in sent.items():
            if event_id in posts.first:
                outcome.latency_first_ms.append((posts.first[event_id] - published_at) * 1000)
            if event_id in posts.delivered:
                outcome.latency_delivered_ms.append(
                    (posts.delivered[event_id] - published_at) * 1000
                )
    return outcome


def resume_kind(reason: str) -> str:
    if reason.startswith("redelivered"):
        return "handover (message redelivered by RabbitMQ)"
    if reason.startswith("stalled"):
        return "sweeper (stalled delivery)"
    return reason.split(";")[0]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(math.ceil(share * len(ordered)) - 1, 0)]


# -- logs and memory -----------------------------------------------------------------------

LOG_LEVEL = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (WARNING|ERROR|CRITICAL) (.*)$")
VARYING = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\d+(\.\d+)?")


@dataclass
class LogCounts:
    levels: Counter[str] = field(default_factory=Counter)
    planned: int = 0  # warnings for deliveries failing every attempt (the receiver's plan)
    resolved_commits: int = 0  # saves found stored after their COMMIT's reply was lost
    messages: Counter[str] = field(default_factory=Counter)  # level and message, ids as "N"

    @classmethod
    def of(cls, lines: list[str]) -> LogCounts:
        counts = cls()
        for line in lines:
            counts.resolved_commits += RESOLVED_COMMIT in line
            if found := LOG_LEVEL.match(line):
                counts.levels[found.group(1)] += 1
                if PLANNED_FAILURE.search(found.group(2)):
                    counts.planned += 1
                    continue
                text = VARYING.sub("N", found.group(2))[:160]
                counts.messages[f"{found.group(1)} {text}"] += 1
        return counts


class MemorySampler:
    """Each process's RSS every ``every`` seconds (its current pid), from /proc."""

    def __init__(self, processes: list[TenzoProcess], every: float = RSS_EVERY):
        self.processes, self.every = processes, every
        self.samples: dict[str, list[tuple[float, float]]] = {p.name: [] for p in processes}
        self.origin = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> MemorySampler:
        self.origin = time.time()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while True:
            at = time.time() - self.origin
            for process in self.processes:
                with contextlib.suppress(OSError):
                    status = Path(f"/proc/{process.pid}/status").read_text()
                    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
                    if found:
                        self.samples[process.name].append((at, int(found.group(1)) / 1024))
            if self._stop.wait(self.every):
                return

    def growth(self, warmup: float) -> dict[str, dict[str, float]]:
        """Per process: RSS just after ``warmup`` (median of the first three samples), at
        the end (median of the last three), the peak after warm-up, and the growth."""
        figures = {}
        for name, samples in self.samples.items():
            after = [rss for at, rss in samples if at >= warmup]
            if len(after) < 2:
                continue
            first, last = sorted(after[:3]), sorted(after[-3:])
            figures[name] = {
                "start_mb": first[len(first) // 2],
                "end_mb": last[len(last) // 2],
                "peak_mb": max(after),
            }
            figures[name]["growth"] = figures[name]["end_mb"] / figures[name]["start_mb"] - 1
        return figures


# -- the run -------------------------------------------------------------------------------


@dataclass
class Stack:
    """What both parts of the run use."""

    args: Any
    seed: int
    policy: tuple[float, float]
    application: Any
    vhost: str
    posts: Posts
    dispatchers: list[Dispatcher]
    relay: TenzoProcess

    @property
    def processes(self) -> list[TenzoProcess]:
        return [self.relay, *(dispatcher.process for dispatcher in self.dispatchers)]


@dataclass
class PartResult:
    name: str
    outcome: Outcome
    faults: list[Fault]
    logs: dict[str, LogCounts]
    started: float
    histories: Histories
    unexpected_exits: list[str]
    memory: dict[str, dict[str, float]] = field(default_factory=dict)
    samples: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    minutes: list[dict[str, Any]] = field(default_factory=list)


def run_part(
    stack: Stack, name: str, load: Load, faults: list[Fault], sample_memory: bool = False
) -> PartResult:
    """Publish ``load`` while ``faults`` happen; wait until drained; check."""
    offsets = {process.name: process.log_size() for process in stack.processes}
    histories = Histories(stack.application)
    sampler = MemorySampler(stack.processes).start() if sample_memory else None
    load.start()
    injector = Injector(stack.dispatchers, stack.relay, faults).start(load.started)
    queues = Queues(stack.vhost)
    report_every = 60 if sample_memory else 10
    next_report = time.time() + report_every
    next_look = time.time() + 5
    while load.running() or injector.running():
        for process in stack.processes:
            process.check_alive()
        if time.time() > next_look:
            next_look += 5
            queues.messages()
        if time.time() > next_report:
            next_report += report_every
            say(
                f"  {time.time() - load.started:5.0f} s: {len(load.sent)} published, "
                f"{len(stack.posts.all)} POSTs received in all"
            )
        time.sleep(0.5)
    if load.error or injector.error:
        raise SystemExit(f"{name}: the load or the faults failed: {load.error or injector.error!r}")
    say(f"  {len(load.sent)} published; waiting for the deliveries to end …")
    drained = wait_drained(
        histories, list(load.sent), queues, stack.args.drain_timeout, stack.processes
    )
    if sampler is not None:
        sampler.stop()
    outcome = check(load.sent, histories, stack.posts, stack.seed, stack.policy)
    outcome.dead_lettered = queues.messages().get(DEAD_LETTER_QUEUE, 0)
    outcome.deferred_peak = queues.deferred_peak
    if drained is not None:
        outcome.drained_after_publish = drained - load.ended
        if injector.last_ended:
            outcome.drained_after_fault = drained - injector.last_ended
    result = PartResult(
        name=name,
        outcome=outcome,
        faults=faults,
        logs={p.name: LogCounts.of(p.log_lines(offsets[p.name])) for p in stack.processes},
        started=load.started,
        histories=histories,
        unexpected_exits=[note for p in stack.processes for note in p.unexpected_exits],
    )
    outcome.resolved_commits = sum(counts.resolved_commits for counts in result.logs.values())
    for process in stack.processes:
        process.unexpected_exits.clear()
    if sampler is not None:
        result.samples = sampler.samples
        result.memory = sampler.growth(warmup_seconds(stack.args))
        result.minutes = per_minute(load, stack.posts, faults)
    return result


def warmup_seconds(args: Any) -> float:
    return min(args.warmup_seconds, args.soak_seconds / 2)


def per_minute(load: Load, posts: Posts, faults: list[Fault]) -> list[dict[str, Any]]:
    """Publish-to-receive latency of the interviews published in each minute."""
    minutes: dict[int, dict[str, Any]] = defaultdict(
        lambda: {"published": 0, "first": [], "delivered": [], "faults": []}
    )
    with posts.lock:
        for event_id, (_, at) in load.sent.items():
            minute = minutes[int((at - load.started) // 60)]
            minute["published"] += 1
            if event_id in posts.first:
                minute["first"].append((posts.first[event_id] - at) * 1000)
            if event_id in posts.delivered:
                minute["delivered"].append((posts.delivered[event_id] - at) * 1000)
    for fault in faults:
        if fault.started:
            minutes[int((fault.started - load.started) // 60)]["faults"].append(fault.kind)
    return [minutes[index] | {"minute": index + 1} for index in sorted(minutes)]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interviews", type=int, default=2000)
    parser.add_argument("--faults", type=int, default=24)
    parser.add_argument("--rate", type=float, default=25.0, help="interviews/s, fault run")
    parser.add_argument("--soak-seconds", type=float, default=600.0)
    parser.add_argument("--soak-rate", type=float, default=40.0, help="interviews/s, soak")
    parser.add_argument("--warmup-seconds", type=float, default=120.0)
    parser.add_argument("--orgs", type=int, default=12)
    parser.add_argument("--fail-first", type=float, default=0.30)
    parser.add_argument("--fail-always", type=float, default=0.02)
    parser.add_argument("--drain-timeout", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--no-docs", action="store_true", help="do not write docs/reliability.md")
    return parser.parse_args()


def certificates(workdir: Path) -> tuple[str, str, str]:
    """A trustme CA and the receiver's certificate for 127.0.0.1: (CA, cert, key) files."""
    import trustme

    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1")
    ca_file, cert_file, key_file = (str(workdir / n) for n in ("ca.pem", "cert.pem", "key.pem"))
    ca.cert_pem.write_to_path(ca_file)
    server_cert.cert_chain_pems[0].write_to_path(cert_file)
    server_cert.private_key_pem.write_to_path(key_file)
    return ca_file, cert_file, key_file


def start_receiver(
    cert_file: str, key_file: str, seed: int, policy: tuple[float, float]
) -> tuple[Any, int, Posts]:
    """The receiver process, its port, and the collector of its POSTs."""
    context = multiprocessing.get_context("spawn")
    port_queue, post_queue = context.Queue(), context.Queue()
    receiver = context.Process(
        target=run_receiver,
        args=(cert_file, key_file, seed, policy, port_queue, post_queue),
        daemon=True,
    )
    receiver.start()
    return receiver, port_queue.get(timeout=30), Posts(post_queue)


def tenzo_env(database_url: str, amqp_url: str, ca_file: str) -> dict[str, str]:
    """The environment of every `tenzo` process (and of this one's application)."""
    return {
        **os.environ,
        "TENZO_DATABASE_URL": database_url,
        "TENZO_BROKER_URL": amqp_url,
        "TENZO_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
        "TENZO_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
        "TENZO_WEBHOOK_CA_BUNDLE": ca_file,
        "TENZO_WEBHOOK_RETRY_DELAYS": ",".join(f"{d:g}" for d in RETRY_DELAYS),
        "TENZO_WEBHOOK_TIMEOUT": f"{WEBHOOK_TIMEOUT:g}",
        "TENZO_DISPATCHER_STALLED_AFTER": f"{STALLED_AFTER:g}",
    }


def run_parts(stack: Stack, orgs: list[Org], amqp_url: str) -> tuple[PartResult, PartResult | None]:
    """The fault run, then the soak (unless --soak-seconds 0)."""
    args, seed = stack.args, stack.seed
    rng = random.Random(seed)
    faults = plan_faults(rng, args.faults, args.interviews / args.rate)
    say(f"fault run: {args.interviews} interviews at {args.rate:g}/s; faults:")
    for fault in faults:
        say(f"  planned at {fault.at:5.1f} s: {fault.describe()}")
    load = Load(amqp_url, orgs, args.rate, random.Random(seed + 1), args.interviews)
    fault_run = run_part(stack, "fault run", load, faults)
    say(outcome_line(fault_run.outcome))
    if args.soak_seconds <= 0:
        return fault_run, None
    faults = plan_soak_faults(rng, args.soak_seconds)
    say(
        f"soak: {args.soak_seconds:g} s at {args.soak_rate:g}/s, "
        f"{plural(len(faults), 'connection fault')} …"
    )
    count = int(args.soak_rate * args.soak_seconds)
    load = Load(amqp_url, orgs, args.soak_rate, random.Random(seed + 2), count)
    soak = run_part(stack, "soak", load, faults, sample_memory=True)
    say(outcome_line(soak.outcome))
    return fault_run, soak


def main() -> None:
    args = parse_args()
    from services.bootstrap import build_application
    from services.settings import Settings

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    say(f"seed {seed}")
    policy = (args.fail_first, args.fail_always)
    # Ctrl-C, a kill or an error: the finally clauses below still stop every child
    # process and drop the virtual host (and the database and logs, unless a target
    # was missed: they are kept for inspection then).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit("hung up"))
    workdir = Path(tempfile.mkdtemp(prefix="tenzo-faults-"))
    ca_file, cert_file, key_file = certificates(workdir)
    receiver, port, posts = start_receiver(cert_file, key_file, seed, policy)
    suffix = f"{seed}_{os.getpid()}"
    database, vhost = f"tenzo_faults_{suffix}", f"tenzo-faults-{suffix}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    database_url = urlunsplit(urlsplit(POSTGRES_URL)._replace(path="/" + database))
    load_before = os.getloadavg()[0]
    processes: list[TenzoProcess] = []
    application = None
    met = False
    try:
        with contextlib.ExitStack() as proxies:
            try:
                amqp_url = make_vhost(vhost)
                env = tenzo_env(database_url, amqp_url, ca_file)
                application = build_application(Settings.from_env(env))
                orgs = populate(
                    application, args.orgs, lambda i: f"https://127.0.0.1:{port}/hooks/{i}"
                )
                say(f"{args.orgs} organizations; starting the relay and 2 dispatchers …")
                relay, dispatchers = set_up_processes(
                    workdir, env, database_url, amqp_url, proxies, processes
                )
                stack = Stack(args, seed, policy, application, vhost, posts, dispatchers, relay)
                fault_run, soak = run_parts(stack, orgs, amqp_url)
                load_after = os.getloadavg()[0]
            finally:
                for process in processes:
                    process.stop()
        report, met = render(args, seed, fault_run, soak, load_before, load_after)
        print(report)
        for part in (fault_run, soak):
            if part is not None:
                print_details(part, processes, posts)
        if not args.no_docs:
            write_docs(report, DOCS, MARKERS, "# Reliability")
    finally:
        receiver.kill()
        if application is not None:
            application.close()
        drop_vhost(vhost)
        if met:
            with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            say(f"\nkept for inspection: the logs in {workdir}, the database {database_url}")
    sys.exit(0 if met else 1)


# -- the report ----------------------------------------------------------------------------


def outcome_line(outcome: Outcome) -> str:
    return (
        f"  {outcome.published} published, {outcome.records} records "
        f"({dict(outcome.statuses)}); lost {len(outcome.lost)}, duplicate records "
        f"{len(outcome.duplicates)}, stranded {len(outcome.stranded)}, misnumbered "
        f"{len(outcome.misnumbered)}; {outcome.posts} POSTs, {outcome.duplicate_posts} "
        f"duplicate; drained {fmt_seconds(outcome.drained_after_publish)} after the last publish"
    )


def fmt_seconds(value: float | None) -> str:
    return "never (timed out)" if value is None else f"{value:.1f} s"


def fmt_ms(values: list[float]) -> str:
    if not values:
        return "–"
    return f"{percentile(values, 0.5):.0f} / {percentile(values, 0.99):.0f} / {max(values):.0f}"


def git_commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no")
    return git("rev-parse", "--short", "HEAD") + (" (with uncommitted changes)" if dirty else "")


def outcome_rows(outcome: Outcome) -> list[tuple[str, str, bool | None]]:
    """(what, measured, met: True/False for a target, None for a figure)."""
    statuses = ", ".join(
        f"{count:,} {status}" for status, count in sorted(outcome.statuses.items())
    )
    resumed = "; ".join(f"{n} {kind}" for kind, n in outcome.resumed.most_common()) or "none"
    drained = (
        f"{fmt_seconds(outcome.drained_after_fault)} / {fmt_seconds(outcome.drained_after_publish)}"
    )
    return [
        ("interviews published (confirmed by RabbitMQ)", f"{outcome.published:,}", None),
        ("delivery records", f"{outcome.records:,} ({statuses})", None),
        ("lost (published, no delivery record)", f"{len(outcome.lost)}", not outcome.lost),
        (
            "duplicate records (a second delivery, outcome or attempt number)",
            f"{len(outcome.duplicates)}",
            not outcome.duplicates,
        ),
        ("stranded (still `pending`)", f"{len(outcome.stranded)}", not outcome.stranded),
        ("attempts not numbered 1..n", f"{len(outcome.misnumbered)}", not outcome.misnumbered),
        (
            "`failed` before the last attempt",
            f"{len(outcome.failed_early)}",
            not outcome.failed_early,
        ),
        (
            "`failed` although the receiver answers 200 to attempt 3",
            f"{len(outcome.failed_unplanned)}",
            None,
        ),
        (
            "POSTs received / attempts recorded",
            f"{outcome.posts:,} / {outcome.recorded_attempts:,}",
            None,
        ),
        (
            "duplicate POSTs (same event id and attempt number again)",
            f"{outcome.duplicate_posts}",
            None,
        ),
        (
            "POSTs beyond one per recorded attempt",
            f"{outcome.posts - outcome.recorded_attempts}",
            None,
        ),
        (
            "POSTed attempts not recorded (of which on deliveries with a DeliveryResumed)",
            f"{outcome.unrecorded_posts} ({outcome.unrecorded_noted})",
            None,
        ),
        (
            "DeliveryResumed events (deliveries)",
            f"{sum(outcome.resumed.values())} ({outcome.resumed_deliveries}): {resumed}",
            None,
        ),
        ("messages dead-lettered", f"{outcome.dead_lettered}", None),
        (
            "most messages set aside at once (slow organization; sampled every 5 s)",
            f"{outcome.deferred_peak}",
            None,
        ),
        (
            "saves found stored after their COMMIT's reply was lost (dispatchers' logs)",
            f"{outcome.resolved_commits}",
            None,
        ),
        (
            "drained after the last fault / the last publish",
            drained,
            outcome.drained_after_publish is not None,
        ),
        ("publish → first POST, p50 / p99 / max ms", fmt_ms(outcome.latency_first_ms), None),
        (
            "publish → POST answered 200, p50 / p99 / max ms",
            fmt_ms(outcome.latency_delivered_ms),
            None,
        ),
    ]


def table(rows: list[tuple[str, str, bool | None]]) -> list[str]:
    mark = {True: "yes", False: "**no**", None: ""}
    return [
        "| check | measured | target met |",
        "|---|---|---|",
        *[f"| {name} | {value} | {mark[met]} |" for name, value, met in rows],
    ]


def log_table(logs: dict[str, LogCounts]) -> list[str]:
    lines = [
        "| process | WARNING | ERROR | of which a delivery failing all its attempts "
        "(planned) | the others, most frequent first (ids and numbers as N) |",
        "|---|---|---|---|---|",
    ]
    for name, counts in logs.items():
        others = "; ".join(f"{n} × `{text}`" for text, n in counts.messages.most_common(4))
        errors = counts.levels["ERROR"] + counts.levels["CRITICAL"]
        lines.append(
            f"| {name} | {counts.levels['WARNING']} | {errors} | {counts.planned} | "
            f"{others or '–'} |"
        )
    return lines


def render(
    args: Any,
    seed: int,
    fault_run: PartResult,
    soak: PartResult | None,
    load_before: float,
    load_after: float,
) -> tuple[str, bool]:
    command = " ".join([COMMAND, *sys.argv[1:]])
    if args.seed is None:
        command += f" --seed {seed}"
    delays = ",".join(f"{d:g}" for d in RETRY_DELAYS)
    lines = [
        "## Faults and a soak on real processes (`bench/faults.py`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit {git_commit()} on "
        f"{machine()}; load average {load_before:.1f} before, {load_after:.1f} after (the "
        "machine is shared).",
        "",
        f"Reproduce: `{command}` (seed {seed}; PostgreSQL from `TENZO_BENCH_POSTGRES_URL`, "
        "RabbitMQ from `TENZO_BENCH_AMQP_URL`, its virtual host made with `rabbitmqctl`). "
        "The faults' kinds, targets and moments follow from the seed; the processes' "
        "timing does not.",
        "",
        "Set-up: PostgreSQL event store (a fresh database), RabbitMQ (a fresh virtual host, "
        f"quorum queues), {args.orgs} organizations each with a webhook, a job and a "
        "candidate; `tenzo relay` and two `tenzo dispatcher` processes, each dispatcher's "
        "PostgreSQL and RabbitMQ connections through TCP fault proxies of its own "
        "(`tests/support/tcp_proxy.py`); interviews published with pika and publisher "
        "confirms straight to RabbitMQ; an asyncio HTTPS receiver (trustme CA) that answers "
        f"500 to every attempt of {args.fail_always:.0%} of the events and to the first "
        f"attempt of {args.fail_first:.0%}, 200 otherwise. "
        f"`TENZO_WEBHOOK_RETRY_DELAYS={delays}`, `TENZO_WEBHOOK_TIMEOUT={WEBHOOK_TIMEOUT:g}`, "
        f"`TENZO_DISPATCHER_STALLED_AFTER={STALLED_AFTER:g}` (so that retries, failures and "
        "the sweeper's healing all happen within the run); other settings default. The "
        "checks read every Delivery event from the event store's notification log through "
        "the application, once no delivery is pending and no interview message is queued, "
        "held or deferred.",
        "",
        f"### Fault run: {args.interviews:,} interviews at {args.rate:g}/s, "
        f"{len(fault_run.faults)} faults",
        "",
        "| # | at | fault | effect |",
        "|---|---|---|---|",
        *[
            f"| {index} | {fault.started - fault_run.started:.1f} s | {fault.describe()} | "
            f"{fault.effect} |"
            for index, fault in enumerate(fault_run.faults, 1)
        ],
        "",
        *table(outcome_rows(fault_run.outcome)),
        "",
        "Log lines at WARNING and above during the fault run and its drain:",
        "",
        *log_table(fault_run.logs),
        *exits_note(fault_run),
    ]
    met = not fault_run.outcome.problems() and not fault_run.unexpected_exits
    if soak is not None:
        soak_lines, soak_met = render_soak(args, soak)
        lines += ["", *soak_lines]
        met = met and soak_met
    lines += ["", verdict(fault_run, soak, met)]
    return "\n".join(lines), met


def render_soak(args: Any, soak: PartResult) -> tuple[list[str], bool]:
    memory_rows = []
    memory_met = bool(soak.memory)
    for name, figures in soak.memory.items():
        within = figures["growth"] <= MEMORY_GROWTH_TARGET
        memory_met = memory_met and within
        memory_rows.append(
            f"| {name} | {figures['start_mb']:.0f} MB | {figures['end_mb']:.0f} MB | "
            f"{figures['peak_mb']:.0f} MB | {figures['growth']:+.1%} | "
            f"{'yes' if within else '**no**'} |"
        )
    series = [
        f"- {name}: " + ", ".join(f"{rss:.0f}" for _, rss in samples)
        for name, samples in soak.samples.items()
    ]
    lines = [
        f"### Soak: {args.soak_seconds:g} s at {args.soak_rate:g} interviews/s, a connection "
        "fault about every minute",
        "",
        "No process is killed or stopped in the soak, so that each one's memory can be "
        "followed; its faults are the fault run's connection faults.",
        "",
        "| minute | published | publish → first POST, p50 / p99 / max ms "
        "| publish → 200, p50 / p99 / max ms | faults |",
        "|---|---|---|---|---|",
        *[
            f"| {minute['minute']} | {minute['published']:,} | {fmt_ms(minute['first'])} | "
            f"{fmt_ms(minute['delivered'])} | {', '.join(minute['faults']) or '–'} |"
            for minute in soak.minutes
        ],
        "",
        f"Memory (RSS every {RSS_EVERY:g} s; the first {warmup_seconds(args):g} s are warm-up "
        "and left out; start and end are medians of three samples; target: growth ≤ "
        f"{MEMORY_GROWTH_TARGET:.0%}):",
        "",
        "| process | after warm-up | at the end | peak | growth | ≤ 10 % |",
        "|---|---|---|---|---|---|",
        *(memory_rows or ["| (too few samples after warm-up) | | | | | **no** |"]),
        "",
        "RSS samples (MB) from the soak's start:",
        "",
        *series,
        "",
        *table(outcome_rows(soak.outcome)),
        "",
        "Log lines at WARNING and above during the soak and its drain:",
        "",
        *log_table(soak.logs),
        *exits_note(soak),
    ]
    return lines, memory_met and not soak.outcome.problems() and not soak.unexpected_exits


def exits_note(part: PartResult) -> list[str]:
    if not part.unexpected_exits:
        return []
    exits = "; ".join(part.unexpected_exits)
    return ["", f"**Processes that exited on their own** (restarted): {exits}."]


def verdict(fault_run: PartResult, soak: PartResult | None, met: bool) -> str:
    if met:
        return (
            "Every target is met: 0 lost, 0 duplicate records, 0 stranded, attempts numbered "
            "1..n" + (", memory growth within 10 % after warm-up." if soak else ".")
        )
    missed = [
        f"{part.name}: {problem}"
        for part in (fault_run, soak)
        if part is not None
        for problem in part.outcome.problems()
    ]
    if soak is not None:
        missed += [
            f"soak: {name}'s memory grew {figures['growth']:+.1%}"
            for name, figures in soak.memory.items()
            if figures["growth"] > MEMORY_GROWTH_TARGET
        ]
    missed += [note for part in (fault_run, soak) if part for note in part.unexpected_exits]
    return "**Targets missed**: " + "; ".join(missed) + "."


def print_details(
    part: PartResult, processes: list[TenzoProcess], posts: Posts, limit: int = 10
) -> None:
    """The deliveries worth a look (a failed check first, then duplicate POSTs): each
    one's history as stored and the log lines that name it."""
    suspects = part.outcome.suspects()
    if suspects:
        print(f"\n{part.name}: {len(suspects)} suspect deliveries (the first {limit} in detail)")
    duplicated = part.outcome.duplicated
    if duplicated:
        listed = "; ".join(f"{e} attempt {a} × {n}" for e, a, n in duplicated[:limit])
        print(f"\n{part.name}: duplicate POSTs: {listed}")
    for event_id in [*suspects[:limit], *(e for e, _, _ in duplicated[:limit])]:
        print(f"\nevent {event_id}:")
        for post in posts.of([event_id]):
            received = datetime.fromtimestamp(post.at, UTC)
            print(f"  POST attempt {post.attempt} at {received:%H:%M:%S.%f}: {post.status}")
        for delivery_id, history in part.histories.by_id.items():
            if history.event_id != event_id:
                continue
            print(f"  delivery {delivery_id} (organization {history.org_id}):")
            for line in history.lines:
                print(f"    {line}")
            for process in processes:
                for line in process.log_lines():
                    if str(delivery_id) in line or event_id in line:
                        print(f"    [{process.name}] {line.rstrip()}")


if __name__ == "__main__":
    main()
