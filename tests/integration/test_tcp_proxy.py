"""The fault proxy of the fault tests (tests/support/tcp_proxy.py), against a real echo
server on loopback: each fault does to a connection what it says, and ``restore()``
brings service back on the same port."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from tests.support.tcp_proxy import TcpProxy


class EchoServer:
    """Answers every chunk with the same bytes; keeps what it received."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.received = bytearray()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(connection,), daemon=True).start()

    def _echo(self, connection: socket.socket) -> None:
        with connection, contextlib.suppress(OSError):
            while data := connection.recv(65536):
                with self.lock:
                    self.received += data
                connection.sendall(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    server = EchoServer()
    try:
        with TcpProxy(("127.0.0.1", server.port)) as running:
            running.server = server  # type: ignore[attr-defined]
            yield running
    finally:
        server.close()


def connect(proxy: TcpProxy) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
    sock.settimeout(2)
    return sock


def echoes(sock: socket.socket, data: bytes = b"ping") -> bool:
    sock.sendall(data)
    received = b""
    while len(received) < len(data):
        chunk = sock.recv(65536)
        if not chunk:
            return False
        received += chunk
    return received == data


def test_forwards_both_ways(proxy):
    with connect(proxy) as sock:
        assert echoes(sock, b"x" * 200_000)
    assert proxy.counts.accepted == 1


def test_cut_closes_connections_and_refuses_until_restored_on_the_same_port(proxy):
    sock = connect(proxy)
    assert echoes(sock)
    port = proxy.port

    proxy.cut()

    assert sock.recv(10) == b""  # the end of the stream, not an error
    with pytest.raises(ConnectionRefusedError):
        connect(proxy)
    proxy.restore()
    assert proxy.port == port
    with connect(proxy) as again:
        assert echoes(again)
    assert proxy.counts.cut == 1


def test_reset_aborts_connections_with_rst_and_keeps_accepting(proxy):
    sock = connect(proxy)
    assert echoes(sock)

    proxy.reset()

    with pytest.raises(ConnectionResetError):
        sock.recv(10)
    with connect(proxy) as again:
        assert echoes(again)
    assert proxy.counts.reset == 1


def test_stall_holds_every_byte_until_resumed(proxy):
    sock = connect(proxy)
    assert echoes(sock)

    proxy.stall()
    sock.sendall(b"held")
    sock.settimeout(0.5)
    with pytest.raises(TimeoutError):
        sock.recv(10)
    late = connect(proxy)  # accepted, but stalled too
    late.sendall(b"late")
    assert proxy.server.received == b"ping"  # nothing reached the server either

    proxy.resume()
    sock.settimeout(2)
    assert sock.recv(10) == b"held"
    assert late.recv(10) == b"late"


def test_refuse_keeps_established_connections(proxy):
    sock = connect(proxy)
    assert echoes(sock)  # accepted by the proxy, not only in the kernel's backlog

    proxy.refuse()

    with pytest.raises(ConnectionRefusedError):
        connect(proxy)
    assert echoes(sock)
    proxy.restore()
    with connect(proxy) as again:
        assert echoes(again)


def test_drop_reply_forwards_the_request_and_resets_instead_of_answering(proxy):
    sock = connect(proxy)
    assert echoes(sock, b"BEGIN")
    proxy.drop_reply_to(b"COMMIT", b"COMMIT")

    sock.sendall(b"COMMIT")

    with pytest.raises(ConnectionResetError):
        sock.recv(10)
    assert proxy.server.received == b"BEGINCOMMIT"  # the server did receive it
    assert proxy.counts.dropped_replies == 1
    with connect(proxy) as again:  # the trap was used up
        assert echoes(again, b"COMMIT")


def test_drop_reply_after_markers_waits_for_a_message_that_follows_them(proxy):
    sock = connect(proxy)
    proxy.drop_reply_to(b"COMMIT", b"COMMIT", after=b"INSERT", at_least=2)

    assert echoes(sock, b"BEGIN")
    assert echoes(sock, b"COMMIT")  # no INSERT in that transaction: answered
    assert echoes(sock, b"INSERT")
    assert echoes(sock, b"COMMIT")  # one INSERT only: answered
    assert echoes(sock, b"INSERT")
    assert echoes(sock, b"INSERT")
    sock.sendall(b"COMMIT")

    with pytest.raises(ConnectionResetError):
        sock.recv(10)
    assert proxy.counts.dropped_replies == 1


def test_leaving_closes_everything():
    server = EchoServer()
    try:
        with TcpProxy(("127.0.0.1", server.port)) as proxy:
            sock = connect(proxy)
            assert echoes(sock)
        assert sock.recv(10) == b""
        assert proxy.open_connections == 0
        with pytest.raises(ConnectionRefusedError):
            connect(proxy)
    finally:
        server.close()
