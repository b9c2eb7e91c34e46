"""Connections to the message broker named by TENZO_BROKER_URL (RabbitMQ or embedded)."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import time
import uuid
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from time import monotonic_ns
from typing import Any, ClassVar

from amqp.exceptions import MessageNacked
from amqp.transport import TCPTransport
from kombu import Connection, Exchange
from kombu.transport import filesystem, pyamqp, virtual
from kombu.utils.json import dumps

from contracts import broker as contract

EVENTS_EXCHANGE = Exchange(contract.EVENTS_EXCHANGE, type="topic", durable=True)
_SEQUENCE = count()


class AtomicChannel(filesystem.Channel):  # type: ignore[misc]
    """Writes each message under a hidden name and renames it into the queue, so a
    consumer polling the folder never reads a message half written (kombu writes the
    final file in place), and names messages in the order they were published."""

    # kombu's filesystem Channel names the argument payload, its base message; kombu
    # passes it by position.
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        # Consumers take files in name order: nanoseconds and a counter keep the order
        # of publication (kombu's milliseconds and a random uuid do not).
        name = f"{monotonic_ns():020d}_{next(_SEQUENCE):012d}_{uuid.uuid4().hex}.{queue}.msg"
        folder = self.data_folder_out
        partial = os.path.join(folder, f".{uuid.uuid4()}.writing")
        with open(partial, "wb") as file:
            file.write(dumps(payload).encode("utf-8"))
        os.replace(partial, os.path.join(folder, name))


class FolderTransport(filesystem.Transport):  # type: ignore[misc]
    """kombu's filesystem transport, with its exchanges and bindings kept per folder.

    kombu keeps them in one process-wide state whatever the folder, so a second folder
    in the same process (tests) would believe its bindings already made and route
    nothing to its queues.
    """

    Channel = AtomicChannel
    _states: ClassVar[dict[str, Any]] = {}

    def __init__(self, client: Any, **kwargs: Any):
        super().__init__(client, **kwargs)
        folder = str(client.transport_options.get("control_folder"))
        self.state = self._states.setdefault(folder, virtual.BrokerState())


# What one read from RabbitMQ's socket may take in: many messages' frames at once.
READ_AHEAD_BYTES = 65536


class ReadAheadTCPTransport(TCPTransport):  # type: ignore[misc]
    """py-amqp's TCP transport, reading what has arrived rather than each frame's bytes.

    py-amqp reads every frame with three ``recv`` calls for exactly its header, payload
    and end byte: nine system calls per message, each letting go of the interpreter
    lock, which a busy dispatcher's other threads then fight over. This one reads up
    to ``READ_AHEAD_BYTES`` at a time and serves the frames already there from memory,
    without touching the socket or its timeout. ``_read_buffer`` keeps py-amqp's
    meaning (the bytes received and not read yet), as a view that is cut, not copied.

    Writes can be gathered too (``gathering_writes``): a relay batch then leaves in
    one ``sendall`` rather than one per message.
    """

    _read_buffer: Any
    _gathered: bytearray | None = None

    def write(self, s: Any) -> None:
        gathered = self._gathered
        if gathered is None:
            super().write(s)
        else:
            gathered += s  # a copy: py-amqp hands over a view of a buffer it reuses

    @contextlib.contextmanager
    def gathering_writes(self) -> Iterator[None]:
        """Hold what is written meanwhile and send it at once when the block ends (or
        fails: what was written is sent, as it would have been). A read meanwhile (a
        call that waits for the broker's answer) sends what is held first."""
        if self._gathered is not None:  # already gathering: the outer block sends
            yield
            return
        self._gathered = bytearray()
        try:
            yield
        finally:
            self._send_gathered(then=None)

    def _send_gathered(self, then: bytearray | None) -> None:
        """Send what is held; hold what follows in ``then`` (None: write it through)."""
        gathered, self._gathered = self._gathered, then
        if gathered:
            super().write(gathered)

    def _read(
        self, n: int, initial: bool = False, _errnos: Any = (errno.EAGAIN, errno.EINTR)
    ) -> bytes:
        if self._gathered:  # waiting for an answer: what it answers must go first
            self._send_gathered(then=bytearray())
        buffered: Any = self._read_buffer
        if len(buffered) < n:
            buffered = self._fill(buffered, n, initial, _errnos)
        view = memoryview(buffered)
        self._read_buffer = view[n:]
        return bytes(view[:n])

    def _fill(self, buffered: Any, n: int, initial: bool, errnos: Any) -> bytearray:
        received = bytearray(buffered)
        try:
            while len(received) < n:
                try:
                    chunk = self._quick_recv(max(n - len(received), READ_AHEAD_BYTES))
                except OSError as error:  # as py-amqp's own _read
                    if error.errno in errnos:
                        if initial and self.raise_on_initial_eintr:
                            raise TimeoutError() from error
                        continue
                    raise
                if not chunk:
                    raise OSError("Server unexpectedly closed connection")
                received += chunk
        except BaseException:
            self._read_buffer = bytes(received)
            raise
        return received  # read through memoryviews, never resized again

    @contextlib.contextmanager
    def having_timeout(self, timeout: float | None) -> Iterator[Any]:
        """A frame already received is read without setting the socket's timeout (two
        system calls, there and back)."""
        if self._holds_a_frame():
            yield self.sock
            return
        with super().having_timeout(timeout) as sock:
            yield sock

    def _holds_a_frame(self) -> bool:
        buffered = self._read_buffer
        if len(buffered) < 7:
            return False
        size = int.from_bytes(buffered[3:7], "big")  # after type (1) and channel (2)
        return len(buffered) >= 7 + size + 1


class ReadAheadConnection(pyamqp.Connection):  # type: ignore[misc]
    # Without "connection.blocked", py-amqp does not read the socket before every
    # publish to look for that notification, which nothing here listens to; RabbitMQ
    # still holds back a publisher while it is short of memory or disk (TCP pushback).
    negotiate_capabilities = {
        **pyamqp.Connection.negotiate_capabilities,
        "connection.blocked": False,
    }

    def Transport(  # noqa: N802 - py-amqp's name and signature
        self,
        host: str,
        connect_timeout: float | None,
        ssl: Any = False,
        read_timeout: float | None = None,
        write_timeout: float | None = None,
        socket_settings: Any = None,
        **kwargs: Any,
    ) -> Any:
        if ssl:
            return super().Transport(
                host, connect_timeout, ssl, read_timeout, write_timeout, socket_settings, **kwargs
            )
        return ReadAheadTCPTransport(
            host,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
            socket_settings=socket_settings,
            **kwargs,
        )


class ReadAheadAMQPTransport(pyamqp.Transport):  # type: ignore[misc]
    """kombu's py-amqp transport on ``ReadAheadTCPTransport``."""

    Connection = ReadAheadConnection


def broker_connection(url: str, *, confirm_publish: bool = False) -> Connection:
    """A kombu connection; ``filesystem://<folder>`` is the embedded broker in a folder.

    ``confirm_publish`` makes every publish on RabbitMQ wait for the broker's
    confirmation (the embedded broker has written the file when publish returns).
    """
    if url.startswith("filesystem://"):
        folder = Path(url.removeprefix("filesystem://") or "var/broker")
        queue, processed, control = folder / "queue", folder / "processed", folder / "control"
        for path in (queue, processed, control):
            path.mkdir(parents=True, exist_ok=True)
        return Connection(
            hostname="localhost",  # unused; kombu warns when there is none
            transport=FolderTransport,
            transport_options={
                "data_folder_in": str(queue),
                "data_folder_out": str(queue),
                "processed_folder": str(processed),
                "store_processed": False,
                "control_folder": str(control),
                "polling_interval": 0.05,  # the default 1 s would add up to 1 s per hop
            },
        )
    return Connection(
        url,
        transport=ReadAheadAMQPTransport if url.startswith("amqp://") else None,
        connect_timeout=5,
        heartbeat=30,
        transport_options={"confirm_publish": True} if confirm_publish else {},
    )


def broker_display(url: str) -> str:
    """The broker URL for logs and messages, its password masked."""
    if url.startswith("filesystem://"):
        return url
    return str(Connection(url).as_uri())


def broker_reachable(url: str, timeout: float = 2.0) -> bool:
    try:
        with broker_connection(url) as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False


@contextlib.contextmanager
def gathered(connection: Connection) -> Iterator[None]:
    """Hold what is written to the broker meanwhile and send it in one ``sendall``
    when the block ends (``ReadAheadTCPTransport.gathering_writes``): a relay batch
    is hundreds of messages, one system call each otherwise. A no-op on other
    transports (the embedded broker, ``amqps://``)."""
    transport = getattr(connection.connection, "transport", None)
    if not isinstance(transport, ReadAheadTCPTransport):
        yield
        return
    with transport.gathering_writes():
        yield


@contextlib.contextmanager
def corked(connection: Connection) -> Iterator[None]:
    """Hold what is written to the broker's socket meanwhile and send it together.

    Acking what has finished (the dispatcher) writes one small frame set per
    message; each becomes its own TCP segment on loopback, and RabbitMQ wakes and
    reads once per segment. Linux's ``TCP_CORK`` queues them until the block ends
    (or a segment is full). A no-op on the embedded broker and where there is no cork.
    """
    sock = getattr(getattr(connection.connection, "transport", None), "sock", None)
    cork = getattr(socket, "TCP_CORK", None)
    if sock is None or cork is None:
        yield
        return
    sock.setsockopt(socket.IPPROTO_TCP, cork, 1)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # the connection failed meanwhile
            sock.setsockopt(socket.IPPROTO_TCP, cork, 0)


class BatchConfirms:
    """RabbitMQ publisher confirms for a batch: publish every message, then wait once.

    Waiting for each message's confirmation in turn would cost a round trip (and, for
    quorum queues, a replicated disk write) per event; the broker confirms a batch
    with a few ``multiple`` acks instead. On a confirm channel the broker numbers
    publishes 1, 2, 3, ….
    """

    def __init__(self, connection: Connection, timeout: float = 30.0):
        self.connection = connection
        self.timeout = timeout
        channel: Any = connection.default_channel  # py-amqp's channel: confirms, events
        channel.confirm_select()
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        self.sent = 0
        self.outstanding: set[int] = set()
        self.nacked = False

    def expect_one(self) -> None:
        """Call before each publish (its confirmation may arrive while publishing more)."""
        self.sent += 1
        self.outstanding.add(self.sent)

    def wait(self) -> None:
        """Return once every message published so far is confirmed; raise otherwise."""
        deadline = time.monotonic() + self.timeout
        while self.outstanding and not self.nacked:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(self.outstanding)} publishes not confirmed")
            self.connection.drain_events(timeout=remaining)
        if self.nacked:
            raise MessageNacked("the broker refused a published message")

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:
            self.outstanding = {tag for tag in self.outstanding if tag > delivery_tag}
        else:
            self.outstanding.discard(delivery_tag)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self.nacked = True
