"""Setting messages aside on RabbitMQ (services/dispatcher/dead_letters.py): a hanging
endpoint's surplus is deferred without waiting for the broker message by message, and
no original is acked before the broker has confirmed its copy."""

from __future__ import annotations

import threading
from urllib.parse import urlsplit, urlunsplit

import pytest
from kombu import Queue

from contracts.broker import DEFERRED_HEADER, DEFERRED_QUEUE
from services.dispatcher.dead_letters import DeadLetters, raw_body
from services.infrastructure.broker import broker_connection
from services.infrastructure.topology import declare_topology
from tests.support import dispatching
from tests.support.dispatching import wait_for
from tests.support.tcp_proxy import TcpProxy

broker_url = dispatching.broker_url  # fixture

SOURCE = "test.dead-letters.source"


def received_originals(consumer, count: int) -> list:
    """``count`` messages published to a queue of this test and received, unacked."""
    source = Queue(SOURCE, routing_key=SOURCE)(consumer.default_channel)
    source.declare()
    source.purge()
    channel = consumer.default_channel
    for index in range(count):
        message = channel.prepare_message(f"interview {index}".encode())
        channel.basic_publish(message, exchange="", routing_key=SOURCE)
    received: list = []

    def all_received() -> bool:
        message = source.get()
        if message is not None:
            received.append(message)
        return len(received) == count

    wait_for(all_received, 10, "the messages to set aside")
    return received


@pytest.mark.rabbitmq
@pytest.mark.parametrize("broker_url", ["rabbitmq"], indirect=True)
def test_deferred_originals_are_acked_only_once_their_copies_are_confirmed(broker_url):
    server = urlsplit(broker_url)
    with (
        TcpProxy((server.hostname, server.port or 5672)) as proxy,
        broker_connection(broker_url) as consumer,
    ):
        through_proxy = urlunsplit(server._replace(netloc=f"guest:guest@127.0.0.1:{proxy.port}"))
        declare_topology(consumer)
        originals = received_originals(consumer, 3)

        dead_letters = DeadLetters(through_proxy)
        dead_letters.defer(originals[0], raw_body(originals[0]), 30)  # opens its connection
        proxy.stall()  # the broker's confirmations no longer arrive
        for message in originals[1:]:
            dead_letters.defer(message, raw_body(message), 30)  # does not wait for them
        acking = threading.Thread(target=dead_letters.ack_deferred)
        acking.start()
        acking.join(1.0)
        assert acking.is_alive()  # waiting for the confirmations, the originals unacked
        assert not any(message.acknowledged for message in originals)

        proxy.resume()
        acking.join(10)
        assert not acking.is_alive()
        assert all(message.acknowledged for message in originals)
        dead_letters.close()

    with broker_connection(broker_url) as reader:
        source = Queue(SOURCE, routing_key=SOURCE)(reader.default_channel)
        assert source.get() is None  # acked: nothing comes back to the source
        deferred = Queue(DEFERRED_QUEUE)(reader.default_channel)
        copies = [deferred.get(no_ack=True) for _ in range(3)]
        assert sorted(copy.body for copy in copies) == [
            b"interview 0",
            b"interview 1",
            b"interview 2",
        ]
        assert {copy.headers[DEFERRED_HEADER] for copy in copies} == {"slow endpoint"}
        source.delete()


@pytest.mark.rabbitmq
@pytest.mark.parametrize("broker_url", ["rabbitmq"], indirect=True)
def test_deferred_originals_go_back_to_their_queue_when_their_copies_may_be_lost(broker_url):
    server = urlsplit(broker_url)
    with (
        TcpProxy((server.hostname, server.port or 5672)) as proxy,
        broker_connection(broker_url) as consumer,
    ):
        through_proxy = urlunsplit(server._replace(netloc=f"guest:guest@127.0.0.1:{proxy.port}"))
        declare_topology(consumer)
        originals = received_originals(consumer, 2)
        dead_letters = DeadLetters(through_proxy)
        dead_letters.defer(originals[0], raw_body(originals[0]), 30)
        proxy.stall()
        dead_letters.defer(originals[1], raw_body(originals[1]), 30)
        proxy.reset()  # the connection setting them aside is gone, confirmations with it
        with pytest.raises(Exception):  # noqa: B017 - whichever error py-amqp raises
            dead_letters.ack_deferred()
        proxy.restore()

        source = Queue(SOURCE, routing_key=SOURCE)(consumer.default_channel)
        back: list = []

        def both_back() -> bool:
            message = source.get(no_ack=True)
            if message is not None:
                back.append(message.body)
            return len(back) == 2

        wait_for(both_back, 10, "the originals, requeued rather than acked")
        assert sorted(back) == [b"interview 0", b"interview 1"]
        dead_letters.close()
        source.delete()
