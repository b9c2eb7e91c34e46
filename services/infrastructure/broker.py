"""Connections to the message broker named by TENZO_BROKER_URL (RabbitMQ or embedded)."""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from time import monotonic_ns
from typing import Any, ClassVar

from kombu import Connection, Exchange
from kombu.transport import filesystem, virtual
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
def corked(connection: Connection) -> Iterator[None]:
    """Hold what is written to the broker's socket meanwhile and send it together.

    Publishing a batch or acking what has finished writes one small frame set per
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
