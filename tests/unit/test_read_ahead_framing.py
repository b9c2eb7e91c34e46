"""ReadAheadTCPTransport (services/infrastructure/broker.py) on a real socket pair: AMQP
frames written in pieces of every size, with pauses in the middle of frames while the
reader's short waits run out, come back whole and in order. Deterministic where the
RabbitMQ test (tests/integration/test_broker_reading.py) can only make it likely."""

from __future__ import annotations

import random
import socket
import struct
import threading
import time

from services.infrastructure.broker import READ_AHEAD_BYTES, ReadAheadTCPTransport

FRAME_END = b"\xce"


def frame(channel: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", 3, channel, len(payload)) + payload + FRAME_END


def test_frames_split_anywhere_and_waits_that_run_out_mid_frame_lose_nothing():
    rng = random.Random(14)
    payloads = [
        rng.randbytes(rng.choice([0, 1, 6, 300, 4096, READ_AHEAD_BYTES + 5])) for _ in range(300)
    ]
    stream = b"".join(frame(n % 7, payload) for n, payload in enumerate(payloads))
    reader_end, writer_end = socket.socketpair()
    transport = ReadAheadTCPTransport("127.0.0.1:5672")
    transport.sock, transport._quick_recv = reader_end, reader_end.recv
    paused_mid_frame = threading.Event()

    def write() -> None:
        at = 0
        while at < len(stream):
            piece = rng.randint(1, 5000)
            writer_end.sendall(stream[at : at + piece])
            at += piece
            if rng.random() < 0.05:
                time.sleep(0.01)  # the reader's 1 ms waits run out, often mid-frame
                paused_mid_frame.set()

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    received: list[tuple[int, bytes]] = []
    timeouts = 0
    deadline = time.monotonic() + 30
    while len(received) < len(payloads) and time.monotonic() < deadline:
        try:
            with transport.having_timeout(0.001):
                frame_type, channel, payload = transport.read_frame()
        except TimeoutError:
            timeouts += 1
            continue
        assert frame_type == 3
        received.append((channel, bytes(payload)))
    writer.join(5)
    reader_end.close()
    writer_end.close()

    assert received == [(n % 7, payload) for n, payload in enumerate(payloads)]
    assert paused_mid_frame.is_set() and timeouts > 0
