"""Setting messages aside on RabbitMQ (services/dispatcher/dead_letters.py): a hanging
endpoint's surplus is deferred without waiting for the broker message by message, and
no original is acked before the broker has confirmed its copy."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
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


def take(source, count: int, what: str, no_ack: bool = False) -> list:
    """``count`` messages from a queue, waited for."""
    taken: list = []

    def all_taken() -> bool:
        message = source.get(no_ack=no_ack)
        if message is not None:
            taken.append(message)
        return len(taken) == count

    wait_for(all_taken, 10, what)
    return taken


@contextmanager
def setting_aside(broker_url: str, count: int) -> Iterator[tuple]:
    """``count`` messages received (unacked) from a queue of this test, and DeadLetters
    whose connection goes through a TCP proxy: (proxy, source queue, originals,
    dead_letters)."""
    server = urlsplit(broker_url)
    with (
        TcpProxy((server.hostname, server.port or 5672)) as proxy,
        broker_connection(broker_url) as consumer,
    ):
        declare_topology(consumer)
        channel = consumer.default_channel
        source = Queue(SOURCE, routing_key=SOURCE)(channel)
        source.declare()
        source.purge()
        for index in range(count):
            message = channel.prepare_message(f"interview {index}".encode())
            channel.basic_publish(message, exchange="", routing_key=SOURCE)
        originals = take(source, count, "the messages to set aside")
        through_proxy = urlunsplit(server._replace(netloc=f"guest:guest@127.0.0.1:{proxy.port}"))
        dead_letters = DeadLetters(through_proxy)
        try:
            yield proxy, source, originals, dead_letters
        finally:
            dead_letters.close()
            source.delete()


@pytest.mark.rabbitmq
@pytest.mark.parametrize("broker_url", ["rabbitmq"], indirect=True)
def test_deferred_originals_are_acked_only_once_their_copies_are_confirmed(broker_url):
    with setting_aside(broker_url, 3) as (proxy, source, originals, dead_letters):
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
        deferred = Queue(DEFERRED_QUEUE)(source.channel)
        copies = take(deferred, 3, "the copies set aside", no_ack=True)
        assert sorted(copy.body for copy in copies) == [
            b"interview 0",
            b"interview 1",
            b"interview 2",
        ]
        assert {copy.headers[DEFERRED_HEADER] for copy in copies} == {"slow endpoint"}
        source.channel.basic_recover(requeue=True)  # anything unacked would come back
        assert source.get(no_ack=True) is None  # acked: nothing comes back


@pytest.mark.rabbitmq
@pytest.mark.parametrize("broker_url", ["rabbitmq"], indirect=True)
def test_deferred_originals_go_back_to_their_queue_when_their_copies_may_be_lost(broker_url):
    with setting_aside(broker_url, 2) as (proxy, source, originals, dead_letters):
        dead_letters.defer(originals[0], raw_body(originals[0]), 30)
        proxy.stall()
        dead_letters.defer(originals[1], raw_body(originals[1]), 30)
        proxy.reset()  # the connection setting them aside is gone, confirmations with it
        with pytest.raises(Exception):  # noqa: B017 - whichever error py-amqp raises
            dead_letters.ack_deferred()
        back = take(source, 2, "the originals, requeued rather than acked", no_ack=True)
        assert sorted(message.body for message in back) == [b"interview 0", b"interview 1"]
