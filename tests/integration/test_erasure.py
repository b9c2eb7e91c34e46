"""Erasing a candidate (SPEC 12): a distinctive name and e-mail, created through the
Public API, delivered in a webhook and shown in the history, are found nowhere after
erasure — not in the database's files or tables, not in any stored event decrypted with
TENZO_ENCRYPTION_KEY, not in the export, the API, the relay's messages, later webhooks
or the dashboard — while the history keeps its shape and its chain verifies."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from kombu import Queue

from contracts.audit_chain import verify
from domain.actors import OPERATOR
from services.api.app import create_app
from services.bootstrap import build_api
from services.cli.main import main
from services.infrastructure.audit_store import check_store
from services.infrastructure.broker import EVENTS_EXCHANGE, broker_connection
from tests.support import dispatching
from tests.support.dispatching import Stack, interview_message, make_settings, publish, wait_for

pytestmark = pytest.mark.timeout(300)
broker_url = dispatching.broker_url
receiver = dispatching.receiver

NAME, SURNAME = "Zebulon", "Quixotelyerased"
EMAIL = "zebulon.quixotely@erasure-test.example"
PHONE = "+44 7700 900123"
RESUME = "https://cv.example/zebulon-quixotely.pdf"
SECRETS = (SURNAME, EMAIL, PHONE, RESUME, "zebulon")


@pytest.fixture
def stack(tmp_path, receiver, database_url) -> Iterator[Stack]:
    settings = make_settings(
        tmp_path, f"filesystem://{tmp_path}/broker", receiver.ca_pem_path, database_url
    )
    with Stack(settings) as running:
        yield running


def found_in(text: str | bytes) -> list[str]:
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    lowered = text.lower()
    return [secret for secret in SECRETS if secret.lower() in lowered]


def whole_database(stack: Stack, tmp_path: Path, database_url: str) -> str:
    """Every byte of the SQLite files, or every row of every PostgreSQL table as text."""
    if database_url.startswith("sqlite"):
        return "".join(
            path.read_bytes().decode("latin-1") for path in tmp_path.glob("events.sqlite3*")
        )
    texts = []
    with psycopg.connect(database_url) as connection:
        tables = connection.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
            "AND table_type = 'BASE TABLE'"
        ).fetchall()
        assert len(tables) >= 10
        for schema, table in tables:
            rows = connection.execute(f'SELECT t::text FROM "{schema}"."{table}" t').fetchall()  # noqa: S608
            texts += [row[0] for row in rows]
    return "\n".join(texts)


def every_stored_event_decrypted(stack: Stack) -> str:
    """What an operator holding TENZO_ENCRYPTION_KEY reads in the event store."""
    mapper = stack.application.mapper
    plain = []
    for notification in stack.application.recorder.select_notifications(start=1, limit=10**6):
        state = mapper.cipher.decrypt(notification.state)  # type: ignore[union-attr]
        if mapper.compressor:
            state = mapper.compressor.decompress(state)
        plain.append(state.decode("utf-8", "replace"))
    return "\n".join(plain)


@contextmanager
def watching_the_relay(stack: Stack) -> Iterator[Any]:
    """A queue bound to every routing key of tenzo.events: what the relay publishes."""
    with broker_connection(stack.settings.broker_url) as connection:
        queue = Queue(f"erasure-watch-{uuid.uuid4().hex[:8]}", EVENTS_EXCHANGE, routing_key="#")
        queue(connection.default_channel).declare()
        yield connection, queue


def relayed(watcher: Any) -> str:
    connection, queue = watcher
    bodies = []
    bound = queue(connection.default_channel)
    while (message := bound.get(no_ack=True)) is not None:
        bodies.append(
            message.body.decode("utf-8") if isinstance(message.body, bytes) else str(message.body)
        )
    assert any("CandidateErased" in body for body in bodies)
    return "\n".join(bodies)


def cli_env(stack: Stack) -> dict[str, str]:
    return {
        "TENZO_DATABASE_URL": stack.settings.database_url,
        "TENZO_ENCRYPTION_KEY": stack.settings.encryption_key,
        "TENZO_BROKER_URL": stack.settings.broker_url,
    }


def events_cli(stack: Stack) -> str:
    """`tenzo events`: the history of every organization with personal values."""
    result = CliRunner().invoke(main, ["events"], env=cli_env(stack))
    assert result.exit_code == 0, result.output
    assert "[erased]" in result.output
    return str(result.output)


def test_an_erased_candidate_is_unreadable_everywhere_and_the_chain_holds(
    stack, receiver, tmp_path, database_url
):
    application = stack.application
    organization, admin_token = application.create_organization("Erasers", OPERATOR)
    admin = {"Authorization": f"Bearer {admin_token}"}
    application.configure_webhook(organization.id, receiver.url, "whsec-e", True, OPERATOR)
    actor = application.authenticate_admin(admin_token)[1]
    _, api_key = application.create_api_key(organization.id, "ats", None, actor)
    public = {"Authorization": f"Bearer {api_key}"}
    api = build_api(stack.settings, application)
    client = create_app(api).test_client()
    watch = watching_the_relay(stack)
    watcher = watch.__enter__()
    try:
        job = client.post("/v1/jobs", json={"title": "Pilot"}, headers=public).json
        body = {
            "job_id": job["id"],
            "external_id": "ats-zq",
            "first_name": NAME,
            "last_name": SURNAME,
            "email": EMAIL,
            "phone": PHONE,
            "resume_url": RESUME,
        }
        created = client.post(
            "/v1/candidates", json=body, headers=public | {"Idempotency-Key": "zq-1"}
        )
        assert created.status_code == 201
        candidate_id = created.json["id"]
        stack.wait_for_projection()
        first = interview_message(organization.id)
        first["data"] |= {"candidate_id": candidate_id, "job_id": job["id"]}
        publish(stack.settings.broker_url, first)
        assert stack.wait_for_outcome(organization.id, first["event_id"]).status == "succeeded"
        assert {SURNAME, EMAIL} <= set(found_in(receiver.requests[0].body))
        history = client.get("/admin/v1/events/export", headers=admin).get_data(as_text=True)
        assert SURNAME in history and EMAIL in history  # shown while not erased
        head = client.get("/admin/v1/events/head", headers=admin).json["hash"]
        # The search finds them before (in the response an Idempotency-Key replays).
        assert EMAIL in found_in(whole_database(stack, tmp_path, database_url))

        erased = client.delete(f"/v1/candidates/{candidate_id}", headers=public)
        assert erased.status_code == 204 and erased.get_data() == b""
        again = client.delete(f"/v1/candidates/{candidate_id}", headers=public)
        by_admin = client.post(f"/admin/v1/candidates/{candidate_id}/erase", headers=admin)
        assert again.status_code == 204 and by_admin.status_code == 204

        # A later interview: its delivery carries ids only.
        stack.wait_for_projection()
        later = interview_message(organization.id)
        later["data"] |= {"candidate_id": candidate_id, "job_id": job["id"]}
        publish(stack.settings.broker_url, later)
        assert stack.wait_for_outcome(organization.id, later["event_id"]).status == "succeeded"
        sent = json.loads(receiver.requests[-1].body)
        assert sent["data"]["candidate"] == {"id": candidate_id, "external_id": "ats-zq"}
        first_delivery = _delivery(first, organization.id)
        redelivered = client.post(f"/admin/v1/deliveries/{first_delivery}/redeliver", headers=admin)
        assert redelivered.status_code == 202
        wait_for(lambda: len(receiver.requests) == 3, what="the redelivery")
        assert found_in(receiver.requests[-1].body) == []
        stack.wait_for_projection()

        # The API: erased, with ids only.
        shown = client.get(f"/v1/candidates/{candidate_id}", headers=public).json
        assert shown["erased"] is True and not found_in(json.dumps(shown))
        assert {"first_name", "last_name", "email", "phone", "resume_url"}.isdisjoint(shown)
        listed = client.get("/v1/candidates", headers=public).get_data(as_text=True)
        assert not found_in(listed)
        # The history: the same shape, [erased], and the chain still verifies.
        export = client.get("/admin/v1/events/export", headers=admin).get_data(as_text=True)
        assert not found_in(export)
        items = [json.loads(line) for line in export.splitlines()]
        assert [i["type"] for i in items if i["aggregate_id"] == candidate_id] == [
            "CandidateCreated",
            "CandidateErased",
        ]
        created_item = next(i for i in items if i["type"] == "CandidateCreated")
        assert created_item["data"]["email"] == "[erased]"
        assert created_item["data"]["job_id"] == job["id"]
        assert verify(export.splitlines(), head=head).ok
        assert not check_store(application).mismatches
        # Deliveries, the dashboard.
        deliveries = client.get("/admin/v1/deliveries", headers=admin).get_data(as_text=True)
        assert not found_in(deliveries)
        dashboard = create_app(api).test_client()
        page = dashboard.get("/sign-in").get_data(as_text=True)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        dashboard.post("/sign-in", data={"token": admin_token, "csrf_token": csrf})
        for path in ("/audit-log", "/audit-log/export", "/deliveries"):
            response = dashboard.get(path)
            assert response.status_code == 200, path
            assert not found_in(response.get_data(as_text=True)), path
        # The relay's messages from now on, and everything stored.
        wait_for(lambda: stack.relay.lag() == 0, what="the relay")
        assert not found_in(relayed(watcher))
        assert not found_in(events_cli(stack))
        # The projection rebuilt from the event store: no personal data, the same chain.
        head_now = client.get("/admin/v1/events/head", headers=admin).json
        rebuilt = CliRunner().invoke(
            main, ["projections", "rebuild", "--restart"], env=cli_env(stack)
        )
        assert rebuilt.exit_code == 0, rebuilt.output
        again = client.get("/admin/v1/events/export", headers=admin).get_data(as_text=True)
        assert again.startswith(export)  # (the dispatcher may have recorded more since)
        assert verify(again.splitlines(), head=head_now["hash"]).ok
        assert not found_in(every_stored_event_decrypted(stack))
        assert not found_in(whole_database(stack, tmp_path, database_url))

        # The same external_id later: a new candidate.
        renewed = client.post("/v1/candidates", json=body, headers=public)
        assert renewed.status_code == 201 and renewed.json["id"] != candidate_id
        assert renewed.json["erased"] is False and renewed.json["email"] == EMAIL
        looked_up = client.get(
            "/v1/candidates", query_string={"external_id": "ats-zq"}, headers=public
        ).json["items"]
        assert [c["id"] for c in looked_up] == [renewed.json["id"]]
    finally:
        watch.__exit__(None, None, None)
        api.close()


def _delivery(message: dict[str, Any], org_id: uuid.UUID) -> uuid.UUID:
    from domain.deliveries import delivery_id

    return delivery_id(org_id, message["event_id"])


def test_erasing_what_is_not_this_organizations_candidate_is_404_and_changes_nothing(
    client, org, other_org, application
):
    from tests.conftest import history
    from tests.integration.test_public_api import JOB, bearer, create_key
    from tests.support.problems import problem_of

    ours, theirs = bearer(create_key(client, org)["key"]), create_key(client, other_org)
    job = client.post("/v1/jobs", json=JOB, headers=ours).json
    person = {"first_name": "Ada", "last_name": "L", "email": "ada@example.com"}
    candidate = client.post("/v1/candidates", json=person | {"job_id": job["id"]}, headers=ours)
    before = history(application)

    for response in (
        client.delete(f"/v1/candidates/{candidate.json['id']}", headers=bearer(theirs["key"])),
        client.post(
            f"/admin/v1/candidates/{candidate.json['id']}/erase", headers=other_org.headers
        ),
        client.delete(f"/v1/candidates/{job['id']}", headers=ours),  # a job is no candidate
        client.delete(f"/v1/candidates/{uuid.uuid4()}", headers=ours),
    ):
        problem_of(response, 404)
    assert client.delete("/v1/candidates/not-an-id", headers=ours).status_code == 404
    assert client.delete(f"/v1/candidates/{candidate.json['id']}").status_code == 401
    assert history(application) == before
    assert (
        client.get(f"/v1/candidates/{candidate.json['id']}", headers=ours).json["erased"] is False
    )
