"""A dispatcher reads a candidate's key once per batch of messages, in its projection
query, and seals the delivery's body with that key: no second read of the key (and no
attempt to create one) per delivery, in a process that has never sealed for that
candidate. Once erased, the same query reads no key: nothing opens, and the body
carries ids only. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid

import pytest

from domain.actors import DISPATCHER, OPERATOR
from domain.deliveries import Delivery
from services.bootstrap import build_application
from services.dispatcher.projection import DispatchProjection, InterviewRef
from tests.support.sql_statements import statements_on


@pytest.fixture
def dispatcher_processes(settings, application):
    """Two more applications on the same store, as two dispatcher processes build them
    (or one, before and after a restart): one projects, the other delivers."""
    first, second = build_application(settings), build_application(settings)
    yield first, second
    first.close()
    second.close()


def test_a_delivery_seals_with_the_key_its_batch_query_read(
    monkeypatch, application, dispatcher_processes
):
    projecting, dispatcher_process = dispatcher_processes
    org, _ = application.create_organization("Keys", by=OPERATOR)
    job, _ = application.upsert_job(org.id, {"title": "Welder"}, by=OPERATOR)
    candidate, _ = application.upsert_candidate(
        org.id,
        {"job_id": job.id, "first_name": "Ottilie", "last_name": "Brand", "email": "o@b.example"},
        by=OPERATOR,
    )
    DispatchProjection(projecting).catch_up("Candidate", candidate.id)
    DispatchProjection(projecting).catch_up("Job", job.id)
    projection = DispatchProjection(dispatcher_process)  # has sealed nothing for anyone
    ref = InterviewRef(org.id, str(candidate.id), str(job.id), uuid.uuid4())
    seen = statements_on(monkeypatch, "tenzo_personal_keys")

    [context] = projection.interview_contexts([ref])
    body = json.dumps({"data": {"candidate": context.candidate, "job": context.job}})
    delivery = Delivery(
        org_id=org.id,
        event_id="evt-1",
        event_type="interview.completed",
        url="https://hooks.example.com/a",
        body=body,
        actor=DISPATCHER,
    )
    [scheduled] = delivery.collect_events()
    sealed = dispatcher_process.mapper.sealed_form(scheduled)

    assert context.candidate["first_name"] == "Ottilie"
    assert "Ottilie" not in sealed.body and set(sealed.sealed) == {"body"}
    assert seen and all("JOIN tenzo_personal_keys" in sql for sql in seen)  # batch query only

    application.erase_candidate(org.id, candidate.id, OPERATOR)
    [erased] = projection.interview_contexts([ref])
    assert set(erased.candidate) == {"id", "external_id"}  # ids only: its key is gone
