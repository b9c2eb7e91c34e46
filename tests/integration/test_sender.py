"""WebhookSender against a real HTTPS receiver on loopback (SPEC 5.2 and 7)."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from datetime import UTC, datetime

import pytest
import trustme
from standardwebhooks.webhooks import Webhook

from contracts.signing import standard_webhooks_secret, verify
from contracts.webhook_payload import webhook_headers
from services.dispatcher.sender import DeliveryPolicy, WebhookSender
from tests.support.https_receiver import HttpsReceiver, ScriptedResponse

BODY = b'{"id":"evt_1","event":"interview.completed"}'
HEADERS = {"Content-Type": "application/json", "X-Webhook-Id": "evt_1"}
NAMED_HOST = "hooks.tenzo.test"  # exists only in the injected resolver below


@pytest.fixture
def receiver(tmp_path):
    with HttpsReceiver(
        ca=trustme.CA(),
        directory=tmp_path,
        hostnames=("localhost", "127.0.0.1", NAMED_HOST),
    ) as running:
        yield running


class RecordingResolver:
    """Resolves a fixed table and counts look-ups, so tests see every DNS query."""

    def __init__(self, table):
        self.table = table
        self.calls: list[str] = []

    def __call__(self, host):
        self.calls.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[host]


@pytest.fixture
def make_sender(receiver):
    senders = []

    def make(resolve=None, **overrides):
        settings = {"allow_private_networks": True, "ca_bundle": receiver.ca_pem_path}
        settings.update(overrides)
        sender = WebhookSender(DeliveryPolicy(**settings), resolve=resolve)
        senders.append(sender)
        return sender

    yield make
    for sender in senders:
        sender.close()


def test_200_succeeds(receiver, make_sender):
    result = make_sender().send(receiver.url, BODY, HEADERS)

    assert result.succeeded
    assert result.status_code == 200
    assert result.error is None
    assert result.reply == "answered"
    assert result.response_excerpt == "ok"
    assert result.started_at.tzinfo is UTC
    assert 0 <= result.duration_ms < 5000
    assert [r.body for r in receiver.requests] == [BODY]


@pytest.mark.parametrize("status", [201, 202, 204])
def test_other_success_statuses_succeed(receiver, make_sender, status):
    receiver.script(ScriptedResponse(status=status, body=b""))

    result = make_sender().send(receiver.url, BODY, HEADERS)

    assert result.succeeded and result.status_code == status


def test_203_fails_with_reason(receiver, make_sender):
    receiver.script(ScriptedResponse(status=203))

    result = make_sender().send(receiver.url, BODY, HEADERS)

    assert not result.succeeded
    assert result.status_code == 203
    assert result.error == "unexpected status 203"


def test_301_fails_and_the_redirect_target_is_not_requested(receiver, make_sender):
    receiver.script(ScriptedResponse(status=301, headers={"Location": "/elsewhere"}))

    result = make_sender().send(receiver.url, BODY, HEADERS)

    assert not result.succeeded
    assert result.status_code == 301
    assert result.error == "redirect 301 not followed"
    assert [r.path for r in receiver.requests] == ["/webhook"]


def test_500_fails_with_status_and_a_1_kib_excerpt(receiver, make_sender):
    receiver.script(ScriptedResponse(status=500, body=b"E" * 5000))

    result = make_sender().send(receiver.url, BODY, HEADERS)

    assert not result.succeeded
    assert result.status_code == 500
    assert result.error == "unexpected status 500"
    assert result.reply == "answered"  # a failure, but the endpoint is there
    assert not result.backpressure
    assert result.response_excerpt == "E" * 1024


@pytest.mark.parametrize("status", [429, 503])
def test_429_and_503_are_answers_asking_for_less(receiver, make_sender, status):
    receiver.script(ScriptedResponse(status=status, body=b"busy"))

    result = make_sender().send(receiver.url, BODY, HEADERS)

    assert not result.succeeded
    assert result.reply == "answered"
    assert result.backpressure


def test_excerpt_decodes_invalid_utf8_with_replacement(receiver, make_sender):
    receiver.script(ScriptedResponse(status=400, body=b"bad \xff\xfe input"))

    result = make_sender().send(receiver.url, BODY, HEADERS)

    assert result.response_excerpt == "bad \ufffd\ufffd input"


def test_a_trickled_body_is_cut_at_the_total_timeout(receiver, make_sender):
    receiver.script(ScriptedResponse(body=b"x" * 100, trickle_bytes_per_second=1))

    result = make_sender(timeout=2.0).send(receiver.url, BODY, HEADERS)

    assert not result.succeeded
    assert 1500 <= result.duration_ms <= 4000
    assert "timeout" in result.error
    assert result.status_code == 200
    assert result.reply == "no_answer"  # a status line is not a whole answer


def test_trickled_status_line_and_headers_are_cut_at_the_total_timeout(receiver, make_sender):
    receiver.script(ScriptedResponse(trickle_bytes_per_second=1, trickle_headers=True))

    result = make_sender(timeout=2.0).send(receiver.url, BODY, HEADERS)

    assert not result.succeeded
    assert 1500 <= result.duration_ms <= 4000
    assert result.error == "timeout after 2.0s"
    assert result.status_code is None
    assert result.reply == "no_answer"


def test_at_most_64_kib_of_a_100_kib_response_is_read(receiver, make_sender):
    # The receiver stalls after 64 KiB: a sender reading one byte more would hang
    # until its timeout instead of returning at once.
    receiver.script(
        ScriptedResponse(body=b"a" * (100 * 1024), stall_after_bytes=64 * 1024, stall_seconds=10)
    )

    result = make_sender(timeout=5.0).send(receiver.url, BODY, HEADERS)

    assert result.succeeded, result.error
    assert result.duration_ms < 2000
    assert result.response_excerpt == "a" * 1024


def test_connection_refused_is_a_failed_attempt(make_sender):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]

    result = make_sender().send(f"https://127.0.0.1:{closed_port}/webhook", BODY, HEADERS)

    assert not result.succeeded
    assert result.status_code is None
    assert result.error == "connection refused"
    assert result.reply == "no_answer"


def test_unknown_ca_is_a_tls_error(receiver, make_sender):
    result = make_sender(ca_bundle=None).send(receiver.url, BODY, HEADERS)

    assert not result.succeeded
    assert result.error.startswith("TLS error: certificate verify failed")
    assert receiver.requests == []


def test_private_ip_literal_is_refused_before_connecting(receiver, make_sender):
    result = make_sender(allow_private_networks=False).send(receiver.url, BODY, HEADERS)

    assert not result.succeeded
    assert result.error == "target address 127.0.0.1 is not public"
    assert result.reply == "not_sent"
    assert receiver.connections == 0


@pytest.mark.parametrize(
    "answer",
    [
        ["127.0.0.1"],
        ["93.184.216.34", "10.0.0.7"],
        # IPv6 forms that carry 127.0.0.1: judged by the same rule as at configuration.
        ["::ffff:0:7f00:1"],  # IPv4-translated (SIIT)
        ["::7f00:1"],  # IPv4-compatible
        ["64:ff9b::7f00:1"],  # NAT64
        ["2002:7f00:1::"],  # 6to4
    ],
)
def test_host_resolving_to_a_private_address_is_refused_before_connecting(
    receiver, make_sender, answer
):
    resolver = RecordingResolver({NAMED_HOST: answer})
    sender = make_sender(resolve=resolver, allow_private_networks=False)

    result = sender.send(receiver.url_for(NAMED_HOST), BODY, HEADERS)

    assert not result.succeeded
    assert result.error == f"target address {answer[-1]} is not public"
    assert resolver.calls == [NAMED_HOST]
    assert receiver.connections == 0


@pytest.mark.parametrize(
    "answer",
    [
        ["169.254.169.254"],
        ["127.0.0.1", "169.254.169.254"],
        ["fe80::1"],
        ["::ffff:169.254.169.254"],  # IPv4-mapped
        ["::a9fe:a9fe"],  # IPv4-compatible
        ["64:ff9b::a9fe:a9fe"],  # NAT64
        ["2002:a9fe:a9fe::"],  # 6to4
    ],
)
def test_a_link_local_target_is_refused_even_when_private_networks_are_allowed(
    receiver, make_sender, answer
):
    """Loopback (the receiver) is allowed; a name that also resolves to a link-local
    address (cloud metadata) is refused before anything connects (SPEC 11)."""
    resolver = RecordingResolver({NAMED_HOST: answer, "localhost": ["127.0.0.1"]})
    sender = make_sender(resolve=resolver, allow_private_networks=True)

    assert sender.send(receiver.url_for("localhost"), BODY, HEADERS).succeeded
    result = sender.send(receiver.url_for(NAMED_HOST), BODY, HEADERS)

    assert not result.succeeded
    assert result.error == f"target address {answer[-1]} is link-local"
    assert receiver.connections == 1  # the loopback delivery's only


@pytest.mark.parametrize(
    "host", ["localhost", "hooks.localhost", "printer.local", "nas.home.arpa", "svc.internal."]
)
def test_a_special_use_name_is_refused_before_any_lookup(receiver, make_sender, host):
    """The configuration-time rule (domain/webhook_urls.py, SPECIAL_USE_NAMES) holds at
    send time too: a name reserved for local use is refused whatever DNS answers, here
    a public address."""
    resolver = RecordingResolver({host: ["93.184.216.34"], host.rstrip("."): ["93.184.216.34"]})
    sender = make_sender(resolve=resolver, allow_private_networks=False)

    result = sender.send(receiver.url_for(host), BODY, HEADERS)

    assert not result.succeeded
    assert result.error == f"host {host!r} is a special-use name, never a public host"
    assert resolver.calls == []
    assert receiver.connections == 0


@pytest.mark.parametrize("literal", ["169.254.169.254", "[fe80::1]", "[::ffff:169.254.169.254]"])
def test_a_link_local_ip_literal_is_refused_even_when_private_networks_are_allowed(
    receiver, make_sender, literal
):
    sender = make_sender(allow_private_networks=True)

    result = sender.send(f"https://{literal}/webhook", BODY, HEADERS)

    address = ipaddress.ip_address(literal.strip("[]"))  # as the URL parser normalises it
    assert result.error == f"target address {address} is link-local"
    assert receiver.connections == 0


@pytest.mark.parametrize("allow_private_networks", [False, True])
def test_a_percent_encoded_host_is_refused_before_connecting(
    receiver, make_sender, allow_private_networks
):
    # urllib3 would decode it to 127.0.0.1; the configuration-time rule refuses it too.
    url = receiver.url_for("%31%32%37.0.0.1")
    result = make_sender(allow_private_networks=allow_private_networks).send(url, BODY, HEADERS)

    assert not result.succeeded
    assert result.error == "URL host must not be percent-encoded"
    assert receiver.connections == 0


@pytest.mark.parametrize("host", ["xn--", "hooks.xn--zz.tenzo.test"])
def test_a_host_that_is_not_valid_idna_is_refused_before_any_lookup(receiver, make_sender, host):
    resolver = RecordingResolver({host: ["127.0.0.1"]})
    sender = make_sender(resolve=resolver)

    result = sender.send(receiver.url_for(host), BODY, HEADERS)

    assert not result.succeeded
    assert result.error.startswith(f"URL must name a valid host: {host!r} is not valid IDNA (")
    assert resolver.calls == []
    assert receiver.connections == 0


def test_unresolvable_host_is_a_failed_attempt(make_sender):
    sender = make_sender(resolve=RecordingResolver({}))

    result = sender.send("https://nowhere.tenzo.test/webhook", BODY, HEADERS)

    assert result.error == "host 'nowhere.tenzo.test' does not resolve"


def test_plain_http_is_refused(make_sender):
    result = make_sender().send("http://127.0.0.1:9/webhook", BODY, HEADERS)

    assert result.error == "URL must use https://"
    assert result.reply == "not_sent"


@pytest.mark.parametrize("host", ["localhost", NAMED_HOST])
def test_connects_to_the_checked_address_and_verifies_tls_against_the_name(
    receiver, make_sender, host
):
    # NAMED_HOST has no DNS record anywhere: reaching the receiver proves the sender
    # connected to the address it resolved once, with SNI and Host naming the host.
    resolver = RecordingResolver({host: ["127.0.0.1"]})

    result = make_sender(resolve=resolver).send(receiver.url_for(host), BODY, HEADERS)

    assert result.succeeded, result.error
    assert resolver.calls == [host]
    assert receiver.server_names == [host]
    assert receiver.requests[0].headers["host"] == f"{host}:{receiver.port}"


def test_certificate_must_match_the_name_not_just_the_address(receiver, make_sender):
    # The certificate covers 127.0.0.1, the address connected to, but not this name.
    resolver = RecordingResolver({"other.tenzo.test": ["127.0.0.1"]})

    result = make_sender(resolve=resolver).send(receiver.url_for("other.tenzo.test"), BODY, HEADERS)

    assert not result.succeeded
    assert result.error.startswith("TLS error:")
    assert "other.tenzo.test" in result.error
    assert receiver.requests == []


def test_sends_exactly_the_webhook_headers_and_body(receiver, make_sender):
    timestamp = int(datetime.now(UTC).timestamp())
    headers = webhook_headers(
        "evt_1", "interview.completed", 2, timestamp, BODY, "s3cret-value", "1.2.3"
    )

    result = make_sender().send(receiver.url, BODY, headers)

    assert result.succeeded
    [received] = receiver.requests
    assert received.method == "POST"
    assert received.body == BODY
    for name, value in headers.items():
        assert received.headers[name.lower()] == value
    assert received.headers["user-agent"] == "Tenzo-Webhooks/1.2.3"
    assert received.headers["x-webhook-attempt"] == "2"
    assert verify("s3cret-value", received.body, received.headers["x-webhook-signature"])
    Webhook(standard_webhooks_secret("s3cret-value")).verify(received.body, received.headers)


def test_keeps_the_connection_alive_between_attempts(receiver, make_sender):
    sender = make_sender()

    first = sender.send(receiver.url, BODY, HEADERS)
    second = sender.send(receiver.url, BODY, HEADERS)

    assert first.succeeded and second.succeeded
    assert receiver.connections == 1
    assert len({r.client_port for r in receiver.requests}) == 1


def test_a_connection_cut_by_the_timeout_is_not_reused(receiver, make_sender):
    receiver.script(ScriptedResponse(body=b"x" * 10, trickle_bytes_per_second=4))
    sender = make_sender(timeout=1.0)

    cut = sender.send(receiver.url, BODY, HEADERS)
    after = sender.send(receiver.url, BODY, HEADERS)

    assert not cut.succeeded
    assert after.succeeded, after.error
    assert after.response_excerpt == "ok"


def test_concurrent_sends_from_worker_threads(receiver, make_sender):
    sender = make_sender()
    results = []

    def work():
        results.append(sender.send(receiver.url, BODY, HEADERS))

    threads = [threading.Thread(target=work) for _ in range(8)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert len(results) == 8
    assert all(result.succeeded for result in results)
    assert len(receiver.requests) == 8
    assert time.monotonic() - started < 5


def test_reads_the_body_when_the_server_closes_the_connection(receiver, make_sender):
    receiver.script(ScriptedResponse(body=b"bye", headers={"Connection": "close"}))
    sender = make_sender()

    closing = sender.send(receiver.url, BODY, HEADERS)
    after = sender.send(receiver.url, BODY, HEADERS)

    assert closing.succeeded and closing.response_excerpt == "bye"
    assert after.succeeded
    assert receiver.connections == 2


def test_the_default_resolver_remembers_answers_for_a_few_seconds():
    from services.dispatcher.sender import CachingResolver

    answers = {"hooks.example.com": ["93.184.215.14"]}
    calls: list[str] = []

    def resolve(host: str) -> list[str]:
        calls.append(host)
        if host not in answers:
            raise OSError("no such host")
        return answers[host]

    resolver = CachingResolver(resolve, seconds=0.2)
    assert resolver("hooks.example.com") == ["93.184.215.14"]
    answers["hooks.example.com"] = ["10.0.0.1"]
    assert resolver("hooks.example.com") == ["93.184.215.14"]  # remembered
    time.sleep(0.25)
    assert resolver("hooks.example.com") == ["10.0.0.1"]  # asked again once expired
    for _ in range(2):
        with pytest.raises(OSError):
            resolver("nowhere.example.com")
    assert calls == ["hooks.example.com", "hooks.example.com"] + ["nowhere.example.com"] * 2
