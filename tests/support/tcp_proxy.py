"""A TCP fault proxy on loopback: a test puts it between a client process and a real
server (PostgreSQL, RabbitMQ) and breaks the connection in the ways networks do,
without touching the server itself (shared by other tests).

Faults, each at once for every connection through the proxy:

- ``cut()``: close every connection (FIN to both sides) and refuse new ones, until
  ``restore()``;
- ``reset()``: abort every connection with a TCP RST (``SO_LINGER`` 0), keep accepting;
- ``stall()``: forward no byte in either direction, sockets kept open (new ones are
  accepted and stall too), until ``resume()`` or ``restore()``;
- ``refuse()``: accept nothing new, keep the established connections, until ``restore()``;
- ``drop_reply_to(request, reply, after=..., at_least=n)``: the next client message
  containing ``request`` (on a connection that sent ``after`` n times since its last
  ``request``) reaches the server, but the server's answer containing ``reply`` does
  not reach the client: the proxy resets that connection instead.
  ``drop_reply_to(b"COMMIT", b"COMMIT")`` in front of PostgreSQL is a commit that
  happened (the server said so) while the client cannot know it did; ``after`` and
  ``at_least`` pick the transactions (e.g. those that wrote at least 10 records).

Thread-safe: a test may call these from any thread while clients use the proxy. Each
connection is served by one thread, which alone reads and writes its sockets; a fault
is an order that thread carries out before the call returns.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass

_ORDER_TIMEOUT = 2.0  # a link busy in a blocking send is closed from outside after this


@dataclass
class ProxyCounts:
    """What the proxy did, so a test can check its faults really hit something."""

    accepted: int = 0
    cut: int = 0  # connections closed by cut()
    reset: int = 0  # connections reset by reset() or drop_reply_to()
    dropped_replies: int = 0


@dataclass(frozen=True)
class _Trap:
    request: bytes
    reply: bytes
    after: bytes | None
    at_least: int

    def takes(self, markers: Counter[bytes]) -> bool:
        return self.after is None or markers[self.after] >= self.at_least


class TcpProxy:
    """Forwards 127.0.0.1:<port> to ``target``; the port stays the same across faults.

    Use as a context manager: leaving it closes the listener and every connection.
    """

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = 0
        self.counts = ProxyCounts()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._links: set[_Link] = set()
        self._stalled = False
        # One exchange whose reply is dropped, each
        self._traps: list[_Trap] = []

    def __enter__(self) -> TcpProxy:
        self.restore()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._close_listener()
        self._order_all("close")

    # -- faults ----------------------------------------------------------------------

    def restore(self) -> None:
        """Normal service: accept connections (on the same port) and forward bytes.
        Replies still to be dropped stay so (``disarm()`` forgets them)."""
        with self._lock:
            listening = self._listener is not None
        if not listening:
            self._listen()
        self.resume()

    def cut(self) -> None:
        """Close every connection and refuse new ones until ``restore()``."""
        self._close_listener()
        closed = self._order_all("cut")
        with self._lock:
            self.counts.cut += closed

    def reset(self) -> None:
        """Abort every established connection with an RST; keep accepting new ones."""
        closed = self._order_all("reset")
        with self._lock:
            self.counts.reset += closed

    def refuse(self) -> None:
        """Refuse new connections until ``restore()``; established ones keep working."""
        self._close_listener()

    def stall(self) -> None:
        """Stop forwarding in both directions (sockets stay open) until ``resume()``."""
        with self._lock:
            self._stalled = True
            links = list(self._links)
        for link in links:
            link.wake()  # a link waiting for data watches only its orders from now on

    def resume(self) -> None:
        """Forward again after ``stall()``; nothing held back is lost."""
        with self._lock:
            self._stalled = False
            links = list(self._links)
        for link in links:
            link.wake()

    def drop_reply_to(
        self,
        request: bytes,
        reply: bytes,
        times: int = 1,
        after: bytes | None = None,
        at_least: int = 1,
    ) -> None:
        """The next ``times`` client messages containing ``request`` are forwarded; when
        the server's answer containing ``reply`` comes, it is dropped and the connection
        reset: the request took effect, the client cannot know it did. With ``after``,
        only on a connection that has sent ``after`` (``at_least`` times) since it last
        sent ``request``: a COMMIT after inserting 10 rows of a kind, say."""
        with self._lock:
            self._traps.extend([_Trap(request, reply, after, at_least)] * times)

    def disarm(self) -> None:
        """Forget the replies ``drop_reply_to`` has not dropped yet."""
        with self._lock:
            self._traps.clear()

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._links)

    @property
    def stalled(self) -> bool:
        with self._lock:
            return self._stalled

    # -- used by the links -----------------------------------------------------------

    def _take_trap(self, data: bytes, link: _Link) -> bytes | None:
        """The reply to drop for this client message, if a trap takes it; counts, per
        connection, the ``after`` markers it has sent since the last request."""
        with self._lock:
            for after in {trap.after for trap in self._traps if trap.after is not None}:
                link.markers[after] += data.count(after)
            for index, trap in enumerate(self._traps):
                if trap.request in data and trap.takes(link.markers):
                    del self._traps[index]
                    link.markers.clear()
                    return trap.reply
            if any(trap.request in data for trap in self._traps):
                link.markers.clear()  # that transaction ended: count again
        return None

    def _unlink(self, link: _Link, reason: str) -> None:
        with self._lock:
            self._links.discard(link)
            if reason == "dropped reply":
                self.counts.dropped_replies += 1
                self.counts.reset += 1

    # -- listening -------------------------------------------------------------------

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _close_listener(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            listener.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _abort(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # cut or refused meanwhile
                    accepted = False
                else:
                    accepted = True
                    link = _Link(self, client, upstream)
                    self._links.add(link)
                    self.counts.accepted += 1
            if not accepted:
                _abort(client)
                _abort(upstream)
                continue
            link.start()

    def _order_all(self, command: str) -> int:
        """Have every link carry out ``command``; returns how many there were."""
        with self._lock:
            links = list(self._links)
        for link in links:
            link.order(command)
        for link in links:
            link.wait_closed()
        return len(links)


class _Link:
    """One client connection and its upstream connection, served by one thread."""

    def __init__(self, proxy: TcpProxy, client: socket.socket, upstream: socket.socket):
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_w.setblocking(False)  # a wake-up never blocks: one pending is enough
        self._command: str | None = None
        # How often this connection sent each drop_reply_to ``after`` (the proxy's lock)
        self.markers: Counter[bytes] = Counter()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def order(self, command: str) -> None:
        self._command = command
        self.wake()

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"!")

    def wait_closed(self) -> None:
        if self._closed.wait(_ORDER_TIMEOUT):
            return
        # Stuck in a send to a peer that reads nothing: wake it with a shutdown.
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._closed.wait(_ORDER_TIMEOUT)

    def _serve(self) -> None:
        outcome = "close"
        try:
            outcome = self._forward()
        except (OSError, ValueError):
            outcome = self._command or "close"
        finally:
            self._finish(outcome)

    def _forward(self) -> str:
        """Forward until a peer closes or a fault is ordered; returns how to finish."""
        dropping: bytes | None = None  # the reply to drop, once it comes
        while True:
            if self._command is not None:
                return self._command
            stalled = self.proxy.stalled
            watched = [self._wake_r] if stalled else [self._wake_r, self.client, self.upstream]
            readable, _, _ = select.select(watched, [], [], 0.5)
            if self._wake_r in readable:
                self._wake_r.recv(4096)
                continue
            for source in readable:
                data = source.recv(65536)
                if not data:
                    return "close"
                if source is self.client:
                    self.upstream.sendall(data)
                    dropping = dropping or self.proxy._take_trap(data, self)
                elif dropping is not None and dropping in data:
                    return "dropped reply"
                else:
                    self.client.sendall(data)

    def _finish(self, outcome: str) -> None:
        """Close both sockets as ``outcome`` says (only this link's thread does)."""
        self.proxy._unlink(self, outcome)
        if outcome in ("reset", "dropped reply"):
            _abort(self.client)
            if outcome == "reset":
                _abort(self.upstream)
            else:  # the server has answered: let it end the session normally
                _close(self.upstream)
        else:
            _close(self.client)
            _close(self.upstream)
        self._wake_r.close()
        self._wake_w.close()
        self._closed.set()


def _close(sock: socket.socket) -> None:
    """Close with a FIN: the peer reads the end of the stream."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def _abort(sock: socket.socket) -> None:
    """Close with an RST: the peer's next read or write fails with ECONNRESET."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
