"""The relay (SPEC 2, 6): the event store's notification log to exchange tenzo.events,
in order, redacted, at least once, with its position saved after the broker confirmed."""

from __future__ import annotations

import json
import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from kombu import Queue
from prometheus_client import REGISTRY

from contracts.broker import RELAY_POSITION_KEY
from domain.actors import OPERATOR
from services.api.app import create_app
from services.bootstrap import build_api, build_application, build_relay
from services.infrastructure.broker import EVENTS_EXCHANGE, broker_connection, corked, gathered
from services.infrastructure.topology import declare_topology
from tests.support import dispatching
from tests.support.dispatching import make_settings, wait_for
from tests.support.tcp_proxy import TcpProxy

broker_url = dispatching.broker_url  # fixture: every test on both brokers


@pytest.fixture
def settings(tmp_path, broker_url):
    return make_settings(tmp_path, broker_url, None)


@pytest.fixture
def application(settings):
    app = build_application(settings)
    yield app
    app.close()


ALL_EVENTS = "test.relay.all-events"


def listen(url: str) -> None:
    """A queue of this test bound to every relayed event (``devtools.#``)."""
    with broker_connection(url) as connection:
        declare_topology(connection)
        Queue(ALL_EVENTS, EVENTS_EXCHANGE, routing_key="devtools.#")(
            connection.default_channel
        ).declare()


position_markers: list[int] = []  # the relay's position markers taken by the last relayed()


def relayed(url: str, expected: int, timeout: float = 10) -> list[tuple[str, dict]]:
    """Take ``expected`` relayed events (routing key, body) from the test's queue; the
    relay's position markers are set aside in ``position_markers``."""
    found: list[tuple[str, dict]] = []
    position_markers.clear()

    def take() -> bool:
        with broker_connection(url) as connection:
            queue = Queue(ALL_EVENTS)(connection.default_channel)
            while (message := queue.get(no_ack=True)) is not None:
                assert message.content_type == "application/json"
                key, body = message.delivery_info["routing_key"], json.loads(message.body)
                if key == RELAY_POSITION_KEY:
                    position_markers.append(body["position"])
                else:
                    found.append((key, body))
        return len(found) >= expected

    wait_for(take, timeout, f"{expected} relayed events")
    return found


def make_history(application):
    organization, _ = application.create_organization("Acme", OPERATOR)
    application.create_api_key(organization.id, "ci", None, OPERATOR)
    application.configure_webhook(
        organization.id, "https://127.0.0.1/a", "top-secret-1", True, OPERATOR
    )
    application.change_webhook(
        organization.id, OPERATOR, url="https://127.0.0.1/b", secret="top-secret-2"
    )
    return organization.id


def test_events_are_relayed_in_order_redacted_with_routing_keys(settings, application, broker_url):
    make_history(application)
    listen(broker_url)
    relay = build_relay(settings, application)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    thread.start()
    try:
        newest = application.recorder.max_notification_id()
        events = relayed(broker_url, newest)
        wait_for(lambda: relay.position() == newest, what="the saved position")
    finally:
        stop.set()
        thread.join(10)

    assert [body["position"] for _, body in events] == list(range(1, newest + 1))
    assert [key for key, _ in events] == [
        "devtools.organization.created",
        "devtools.admin_token.issued",
        "devtools.api_key.created",
        "devtools.webhook.configured",
        "devtools.webhook.url_changed",
        "devtools.webhook.secret_changed",
    ]
    text = json.dumps([body for _, body in events])
    assert "top-secret" not in text and '"[redacted]"' in text
    assert events[2][1]["data"]["key_hash"] == "[redacted]"
    assert position_markers == [newest]  # one batch, then its position marker
    assert relay.lag() == 0
    assert REGISTRY.get_sample_value("tenzo_relay_lag_events") == 0


def test_a_new_relay_continues_from_the_saved_position(settings, application, broker_url):
    make_history(application)
    listen(broker_url)
    with broker_connection(broker_url) as connection:
        first = build_relay(settings, application)
        while first.publish_batch(connection):
            pass
        relayed(broker_url, application.recorder.max_notification_id())  # drain them

        organization, _ = application.create_organization("Globex", OPERATOR)
        restarted = build_relay(settings, application)
        assert restarted.lag() == 2
        while restarted.publish_batch(connection):
            pass

    events = relayed(broker_url, 2)
    assert [key for key, _ in events] == [
        "devtools.organization.created",
        "devtools.admin_token.issued",
    ]
    assert events[0][1]["aggregate_id"] == str(organization.id)


@pytest.mark.rabbitmq
@pytest.mark.parametrize("broker_url", ["rabbitmq"], indirect=True)
def test_the_api_keeps_working_while_the_broker_is_down_and_the_relay_catches_up(
    tmp_path, broker_url
):
    server = urlsplit(broker_url)
    with TcpProxy((server.hostname, server.port or 5672)) as proxy:
        through_proxy = urlunsplit(server._replace(netloc=f"guest:guest@127.0.0.1:{proxy.port}"))
        settings = make_settings(tmp_path, through_proxy, None, TENZO_OPERATOR_TOKEN="op-token")
        application = build_application(settings)
        client = create_app(build_api(settings, application)).test_client()
        relay = build_relay(settings, application, poll_interval=0.05)
        listen(broker_url)
        stop = threading.Event()
        thread = threading.Thread(target=relay.run, args=(stop,), daemon=True)
        thread.start()
        try:
            org: Any = client.post(
                "/admin/v1/organizations",
                json={"name": "Acme"},
                headers={"Authorization": "Bearer op-token"},
            ).json
            headers = {"Authorization": f"Bearer {org['admin_token']}"}
            wait_for(lambda: relay.position() == 2, what="the relay to publish")

            proxy.cut()  # the broker is unreachable for the relay
            for name in ("one", "two", "three"):
                response = client.post("/admin/v1/api-keys", json={"name": name}, headers=headers)
                assert response.status_code == 201
            assert relay.position() == 2
            assert wait_for(lambda: relay.lag() == 3, what="the lag to show")

            proxy.restore()
            wait_for(lambda: relay.position() == 5, 20, "the relay to catch up")
        finally:
            stop.set()
            thread.join(10)
            application.close()

    events = relayed(broker_url, 5)
    positions = [body["position"] for _, body in events]
    # At least once and in order: every position, each first seen after the ones before it.
    assert sorted(set(positions)) == [1, 2, 3, 4, 5]
    firsts = [p for i, p in enumerate(positions) if p not in positions[:i]]
    assert firsts == [1, 2, 3, 4, 5]


def test_writes_to_the_broker_are_corked_only_inside_the_block(broker_url):
    """The dispatcher's acks go out together: on RabbitMQ the socket
    holds them (TCP_CORK) until the block ends, and lets go even when the block fails;
    on the embedded broker there is no socket and the block simply runs."""
    import socket

    with broker_connection(broker_url) as connection:
        connection.ensure_connection(max_retries=1)
        sock = getattr(getattr(connection.connection, "transport", None), "sock", None)

        def cork() -> int | None:
            return None if sock is None else sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK)

        embedded = broker_url.startswith("filesystem://")
        assert (sock is None) == embedded

        def expected(value: int) -> int | None:
            return None if embedded else value

        assert cork() == expected(0)
        with corked(connection):
            assert cork() == expected(1)
        assert cork() == expected(0)
        with pytest.raises(RuntimeError), corked(connection):
            raise RuntimeError("the batch failed")
        assert cork() == expected(0)


def test_a_relay_batch_leaves_in_one_write(broker_url):
    """A relay batch goes out together: on RabbitMQ nothing written inside the block
    reaches the broker before the block ends (then all of it, in order, also when the
    block fails), unless a call inside waits for the broker's answer, which sends what
    is held first. The embedded broker has no socket to hold; the block simply runs."""
    embedded = broker_url.startswith("filesystem://")
    queue = Queue("test.relay.corked", EVENTS_EXCHANGE, routing_key="test.corked")
    received: list[str] = []

    def received_at_least(count: int) -> bool:
        while (message := queue(reader.default_channel).get(no_ack=True)) is not None:
            body = message.body
            received.append(body.decode() if isinstance(body, bytes) else body)
        return len(received) >= count

    def nothing_arrives() -> None:
        if not embedded:
            threading.Event().wait(0.5)  # long enough for a sent message to be routed
            assert not received_at_least(len(received) + 1)

    with broker_connection(broker_url) as writer, broker_connection(broker_url) as reader:
        declare_topology(writer)
        queue(writer.default_channel).declare()
        channel = writer.default_channel

        def publish(body: str) -> None:
            message = channel.prepare_message(body.encode(), content_type="text/plain")
            channel.basic_publish(message, exchange=EVENTS_EXCHANGE.name, routing_key="test.corked")

        with gathered(writer):
            publish("one")
            publish("two")
            with gathered(writer):  # nested: the outer block sends
                publish("three")
            nothing_arrives()
        wait_for(lambda: received_at_least(3), 10, "the corked messages")
        assert received == ["one", "two", "three"]

        with pytest.raises(RuntimeError), gathered(writer):
            publish("four")
            raise RuntimeError("the batch failed")
        wait_for(lambda: received_at_least(4), 10, "the failed block's message")

        with gathered(writer):
            publish("five")
            queue(channel).declare()  # waits for the broker's answer: "five" goes first
            wait_for(lambda: received_at_least(5), 10, "the message sent before the call")
            publish("six")
            nothing_arrives()
        wait_for(lambda: received_at_least(6), 10, "the last message")
        assert received == ["one", "two", "three", "four", "five", "six"]
