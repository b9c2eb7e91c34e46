"""Reading RabbitMQ's socket ahead (services/infrastructure/broker.py): many frames per
system call, and every message still whole and in order, whatever its size and however
often a short wait for the broker runs out in the middle of a frame."""

from __future__ import annotations

import os
import threading
import time

import pika
import pytest
from kombu import Consumer, Queue

from services.dispatcher.dead_letters import raw_body
from services.infrastructure.broker import (
    READ_AHEAD_BYTES,
    ReadAheadTCPTransport,
    broker_connection,
)

pytestmark = pytest.mark.rabbitmq


def test_messages_of_every_size_arrive_whole_and_in_order(amqp_url):
    queue_name = f"tenzo.test.read-ahead.{os.urandom(4).hex()}"
    sizes = [0, 1, 7, 300, READ_AHEAD_BYTES - 1, READ_AHEAD_BYTES, READ_AHEAD_BYTES + 9, 250_000]
    bodies = [os.urandom(size) for size in sizes * 8]
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as producer:
        producer.channel().queue_declare(queue_name, auto_delete=False)

    def publish() -> None:  # while the consumer waits: some of its waits run out
        with pika.BlockingConnection(pika.URLParameters(amqp_url)) as producer:
            channel = producer.channel()
            for body in bodies:
                channel.basic_publish("", queue_name, body)
                time.sleep(0.002)

    publisher = threading.Thread(target=publish, daemon=True)
    received: list[bytes] = []
    timeouts = 0
    with broker_connection(amqp_url) as connection:
        channel = connection.default_channel
        queue = Queue(queue_name, no_declare=True)
        consumer = Consumer(
            channel,
            [queue],
            on_message=lambda message: (received.append(raw_body(message)), message.ack()),
            accept=["application/data", "application/octet-stream"],
            prefetch_count=50,
        )
        with consumer:
            publisher.start()
            deadline = time.monotonic() + 60
            while len(received) < len(bodies) and time.monotonic() < deadline:
                try:  # the dispatcher's shortest wait: it often ends mid-frame
                    connection.drain_events(timeout=0.0005)
                except TimeoutError:
                    timeouts += 1
        transport = connection.connection.transport
        channel.queue_delete(queue_name)

    assert isinstance(transport, ReadAheadTCPTransport)
    assert [len(body) for body in received] == [len(body) for body in bodies]
    assert received == bodies
    assert timeouts > 0  # the waits did run out while messages were arriving
