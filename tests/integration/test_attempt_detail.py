"""What an attempt records besides its outcome (SPEC 10): headers as sent and as
received (secrets masked, capped), and one plain ``cause`` per kind of failure — from a
real HTTPS receiver on loopback that sets cookies, one that refuses, one with an
untrusted certificate and one that trickles; then through the dispatcher into the
admin API and its OpenAPI document."""

from __future__ import annotations

import html
import json
import socket
from contextlib import contextmanager

import pytest
import trustme

from contracts.webhook_payload import webhook_headers
from domain.actors import OPERATOR
from services.api.app import create_app
from services.bootstrap import build_api
from services.dispatcher.attempt_detail import MASK, TRUNCATED_HEADER, kept_response_headers
from services.dispatcher.sender import DeliveryPolicy, WebhookSender
from tests.integration.test_dashboard import Page
from tests.support import dispatching
from tests.support.dispatching import Stack, interview_message, make_settings, publish
from tests.support.https_receiver import HttpsReceiver, ScriptedResponse

BODY = b'{"id":"evt_1","event":"webhook.test"}'
SECRET = "whsec-detail-secret"

broker_url = dispatching.broker_url  # fixtures: every test using them on both brokers


@pytest.fixture
def receiver(tmp_path):
    with HttpsReceiver(ca=trustme.CA(), directory=tmp_path) as running:
        yield running


@pytest.fixture
def sender(receiver):
    with WebhookSender(
        DeliveryPolicy(allow_private_networks=True, ca_bundle=receiver.ca_pem_path, timeout=2.0)
    ) as running:
        yield running


def signed_headers(attempt=1):
    return webhook_headers("evt_1", "webhook.test", attempt, 1_700_000_000, BODY, SECRET, "1.0")


def test_request_headers_are_recorded_as_sent_signatures_included(receiver, sender):
    headers = signed_headers()

    result = sender.send(receiver.url, BODY, headers)

    [received] = receiver.requests
    assert result.succeeded and result.cause is None
    for name, value in headers.items():
        assert result.request_headers[name] == value == received.headers[name.lower()]
    assert result.request_headers["Content-Length"] == str(len(BODY))
    assert result.request_headers["Host"] == received.headers["host"]
    assert SECRET not in repr(result.request_headers)  # the signature, never the secret


def test_response_headers_are_kept_with_the_receivers_secrets_masked(receiver, sender):
    receiver.script(
        ScriptedResponse(
            status=200,
            headers={
                "Set-Cookie": "session=abc123; HttpOnly",
                "X-Request-Id": "req-42",
                "X-Auth-Token": "t0ken",
            },
        )
    )

    result = sender.send(receiver.url, BODY, signed_headers())

    kept = result.response_headers
    assert kept["X-Request-Id"] == "req-42"
    assert kept["Set-Cookie"] == MASK and kept["X-Auth-Token"] == MASK
    assert "abc123" not in repr(kept) and "t0ken" not in repr(kept)


def test_response_headers_are_capped_at_4_kib():
    many = [(f"X-Filler-{i}", "v" * 100) for i in range(100)]

    kept = kept_response_headers(many)

    assert sum(len(k) + len(v) for k, v in kept.items() if k != TRUNCATED_HEADER) <= 4096
    assert kept[TRUNCATED_HEADER].startswith(f"{100 - (len(kept) - 1)} header(s)")


def test_a_500_says_what_the_server_answered(receiver, sender):
    receiver.script(ScriptedResponse(status=500, body=b"boom"))

    result = sender.send(receiver.url, BODY, signed_headers())

    assert result.cause == "Your server answered 500 Internal Server Error."
    assert result.response_excerpt == "boom" and result.response_headers


def test_a_refused_connection_names_the_address_and_port(sender):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]

    result = sender.send(f"https://127.0.0.1:{closed_port}/webhook", BODY, signed_headers())

    assert result.cause == (
        f"Connection refused by 127.0.0.1:{closed_port} — is your server listening on that port?"
    )
    assert result.response_headers is None


def test_an_untrusted_certificate_says_whose_and_why(receiver):
    with WebhookSender(DeliveryPolicy(allow_private_networks=True)) as untrusting:
        result = untrusting.send(receiver.url, BODY, signed_headers())

    assert result.cause.startswith("The TLS certificate of 127.0.0.1 is not trusted: ")
    assert "unable to get local issuer certificate" in result.cause


def test_a_trickling_server_is_cut_at_the_timeout_and_says_so(receiver, sender):
    receiver.script(ScriptedResponse(body=b"x" * 100, trickle_bytes_per_second=1))

    result = sender.send(receiver.url, BODY, signed_headers())

    assert result.cause == f"No complete answer within 2 s from 127.0.0.1:{receiver.port}."


def test_a_host_that_does_not_resolve_says_to_check_the_name():
    def nothing(host):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with WebhookSender(DeliveryPolicy(), resolve=nothing) as sender:
        result = sender.send("https://nowhere.example.com/hook", BODY, signed_headers())

    assert result.cause == (
        "Not sent: the host 'nowhere.example.com' does not resolve — check the URL's host name."
    )


# -- through the dispatcher into the admin API ----------------------------------------------


@pytest.fixture
def stack(tmp_path, broker_url, receiver):
    with Stack(make_settings(tmp_path, broker_url, receiver.ca_pem_path)) as running:
        yield running


def test_the_admin_api_shows_each_attempt_in_full_and_tells_runs_apart(stack, receiver, broker_url):
    receiver.script(
        *[ScriptedResponse(status=503, body=b"busy", headers={"Set-Cookie": "s=1"})] * 3
    )
    organization, token = stack.application.create_organization("Detail", OPERATOR)
    org_id = organization.id
    stack.application.configure_webhook(org_id, receiver.url, SECRET, True, OPERATOR)
    stack.wait_for_projection()
    client = create_app(build_api(stack.settings, stack.application)).test_client()
    auth = {"Authorization": f"Bearer {token}"}
    message = interview_message(org_id)

    publish(broker_url, message)
    delivery = stack.wait_for_outcome(org_id, message["event_id"])
    shown = client.get(f"/admin/v1/deliveries/{delivery.id}", headers=auth).json

    assert shown["status"] == "failed" and shown["run"] == 1
    assert shown["next_attempt_at"] is None
    assert shown["request_body"] == receiver.requests[0].body.decode()
    assert [a["number"] for a in shown["attempts"]] == [1, 2, 3]
    for attempt, received in zip(shown["attempts"], receiver.requests, strict=True):
        assert attempt["run"] == 1
        assert attempt["cause"].startswith("Your server answered 503 Service Unavailable")
        assert (
            attempt["request_headers"]["X-Webhook-Signature"]
            == (received.headers["x-webhook-signature"])
        )
        assert attempt["request_headers"]["X-Webhook-Attempt"] == str(attempt["number"])
        assert attempt["response_headers"]["Set-Cookie"] == MASK
    # The body is the delivery's own: no attempt event repeats it.
    history = stack.application.event_history(org_id, aggregate_id=delivery.id)
    attempted = [item["data"] for item in history if item["type"] == "DeliveryAttempted"]
    assert attempted and all("body" not in data for data in attempted)
    assert all(shown["request_body"] not in str(data) for data in attempted)

    again = client.post(f"/admin/v1/deliveries/{delivery.id}/redeliver", headers=auth)
    assert again.status_code == 202 and again.json["run"] == 2
    stack.wait_for_outcome(org_id, message["event_id"])
    redelivered = client.get(f"/admin/v1/deliveries/{delivery.id}", headers=auth).json
    assert redelivered["status"] == "succeeded" and redelivered["run"] == 2
    assert [a["run"] for a in redelivered["attempts"]] == [1, 1, 1, 2]
    assert redelivered["attempts"][-1]["cause"] is None


def test_a_pending_delivery_says_when_its_next_attempt_is_due(tmp_path, broker_url, receiver):
    settings = make_settings(
        tmp_path, broker_url, receiver.ca_pem_path, TENZO_WEBHOOK_RETRY_DELAYS="0,30"
    )
    receiver.script(ScriptedResponse(status=500))
    with Stack(settings) as stack:
        org_id = stack.organization(receiver.url)
        message = interview_message(org_id)
        publish(broker_url, message)
        delivery = dispatching.wait_for(
            lambda: _attempted(stack, org_id, message["event_id"]), what="the first attempt"
        )
        due = delivery.next_attempt_at(stack.application.retry)
        ended = delivery.last_attempt_ended_at()
        assert delivery.status == "pending"
        assert 29 <= (due - ended).total_seconds() <= 31


def _attempted(stack, org_id, event_id):
    try:
        delivery = stack.delivery(org_id, event_id)
    except Exception:  # noqa: BLE001 - not recorded yet
        return None
    return delivery if delivery.attempts else None


def test_the_openapi_document_describes_the_detail(client):
    schemas = client.get("/openapi.json").json["components"]["schemas"]
    attempt = schemas["Attempt"]["properties"]
    assert {"cause", "request_headers", "response_headers", "run"} <= set(attempt)
    delivery = schemas["Delivery"]["properties"]
    assert {"request_body", "next_attempt_at", "run"} <= set(delivery)


# -- each kind of receiver through the dispatcher, on both brokers ---------------------------


@contextmanager
def one_delivery(tmp_path, broker_url, url, ca_bundle, **env):
    """A stack that tries each delivery once; yield its admin API answer for one event
    sent to ``url``, its dashboard page (as text) and the stack."""
    settings = make_settings(tmp_path, broker_url, ca_bundle, TENZO_WEBHOOK_RETRY_DELAYS="0", **env)
    with Stack(settings) as stack:
        organization, token = stack.application.create_organization("Receivers", OPERATOR)
        stack.application.configure_webhook(organization.id, url, SECRET, True, OPERATOR)
        stack.wait_for_projection()
        client = create_app(build_api(stack.settings, stack.application)).test_client()
        message = interview_message(organization.id)
        publish(broker_url, message)
        delivery = stack.wait_for_outcome(organization.id, message["event_id"], timeout=30)
        shown = client.get(
            f"/admin/v1/deliveries/{delivery.id}", headers={"Authorization": f"Bearer {token}"}
        )
        assert shown.status_code == 200, shown.json
        page = Page(client)
        assert page.sign_in(token).status_code == 302
        text = html.unescape(page.get(f"/deliveries/{delivery.id}").get_data(as_text=True))
        yield shown.json, text, stack


def test_a_receiver_that_sets_cookies_has_them_masked_in_the_api_and_the_page(
    tmp_path, broker_url, receiver
):
    receiver.script(
        ScriptedResponse(
            status=200,
            headers={"Set-Cookie": "session=abc123; HttpOnly; Secure", "X-Request-Id": "req-7"},
        )
    )

    with one_delivery(tmp_path, broker_url, receiver.url, receiver.ca_pem_path) as (shown, page, _):
        [attempt] = shown["attempts"]
        assert shown["status"] == "succeeded" and attempt["status_code"] == 200
        assert attempt["response_headers"]["Set-Cookie"] == MASK
        assert attempt["response_headers"]["X-Request-Id"] == "req-7"
        assert attempt["cause"] is None
        assert "abc123" not in json.dumps(shown)
        assert f"Set-Cookie: {MASK}" in page and "X-Request-Id: req-7" in page
        assert "abc123" not in page


def test_a_receiver_that_refuses_connections_is_named_with_its_port(tmp_path, broker_url):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    url = f"https://127.0.0.1:{closed_port}/webhook"
    cause = (
        f"Connection refused by 127.0.0.1:{closed_port} — is your server listening on that port?"
    )

    with one_delivery(tmp_path, broker_url, url, None) as (shown, page, _):
        [attempt] = shown["attempts"]
        assert shown["status"] == "failed" and attempt["status_code"] is None
        assert attempt["cause"] == cause
        assert attempt["response_headers"] == {}  # nothing answered
        assert cause in page


def test_a_receiver_with_an_untrusted_certificate_says_it_is_not_trusted(
    tmp_path, broker_url, receiver
):
    # The dispatcher trusts the system's certificate authorities, not the receiver's own.
    with one_delivery(tmp_path, broker_url, receiver.url, None) as (shown, page, _):
        [attempt] = shown["attempts"]
        assert shown["status"] == "failed" and attempt["status_code"] is None
        assert attempt["cause"].startswith("The TLS certificate of 127.0.0.1 is not trusted: ")
        assert attempt["cause"] in page
    assert receiver.requests == []  # nothing was sent


def test_a_receiver_that_trickles_past_the_timeout_says_so(tmp_path, broker_url, receiver):
    receiver.script(ScriptedResponse(body=b"x" * 100, trickle_bytes_per_second=2))

    with one_delivery(
        tmp_path, broker_url, receiver.url, receiver.ca_pem_path, TENZO_WEBHOOK_TIMEOUT="1"
    ) as (shown, page, _):
        [attempt] = shown["attempts"]
        cause = f"No complete answer within 1 s from 127.0.0.1:{receiver.port}."
        assert shown["status"] == "failed"
        assert attempt["cause"] == cause and cause in page
        assert attempt["duration_ms"] < 10_000  # cut at the timeout, not at the last byte
    assert len(receiver.requests) == 1
