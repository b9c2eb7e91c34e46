"""Aggregates of the Public API: jobs and candidates (SPEC 5.3)."""

from __future__ import annotations

from uuid import uuid4

import pytest

from contracts.audit import audit_item, event_type_names
from domain.actors import actor
from domain.errors import InvalidInput
from domain.paging import decode_cursor, encode_cursor
from domain.recruiting import Candidate, Job, external_aggregate_id

KEY = actor("api_key", uuid4())


def new_job(org_id=None, external_id=None, **changes) -> Job:
    fields = {
        "title": "Backend engineer",
        "description": None,
        "location": "Berlin",
        "department": None,
        "employment_type": "full-time",
        "status": "open",
    }
    return Job(org_id=org_id or uuid4(), external_id=external_id, actor=KEY, **(fields | changes))


def new_candidate(org_id=None, external_id=None, **changes) -> Candidate:
    fields = {
        "job_id": uuid4(),
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.com",
        "phone": None,
        "resume_url": None,
    }
    return Candidate(
        org_id=org_id or uuid4(), external_id=external_id, actor=KEY, **(fields | changes)
    )


def types(events) -> list[str]:
    return [event_type_names(e)[1] for e in events]


def test_a_job_with_an_external_id_has_an_id_derived_from_organization_and_external_id():
    org_id = uuid4()
    first = new_job(org_id, external_id="ats-1")
    again = new_job(org_id, external_id="ats-1", title="Other")
    assert first.id == again.id == external_aggregate_id(org_id, "Job", "ats-1")
    assert new_job(uuid4(), external_id="ats-1").id != first.id  # per organization
    assert new_candidate(org_id, external_id="ats-1").id != first.id  # per kind
    assert new_job(org_id).id != new_job(org_id).id  # random without an external id


def test_creating_a_job_records_job_created_with_its_actor():
    job = new_job(external_id="ats-1")
    events = job.collect_events()
    assert types(events) == ["JobCreated"]
    item = audit_item(events[0], position=1)
    assert item["actor"] == KEY
    assert item["data"]["title"] == "Backend engineer"
    assert item["data"]["external_id"] == "ats-1"


def test_updating_a_job_merges_given_fields_and_records_every_new_value():
    job = new_job(description="Build things")
    job.collect_events()
    assert job.update({"title": "Staff engineer", "location": None}, actor=KEY)
    assert (job.title, job.location, job.description) == ("Staff engineer", None, "Build things")
    events = job.collect_events()
    assert types(events) == ["JobUpdated"]
    data = audit_item(events[0], position=2)["data"]
    assert data["title"] == "Staff engineer"
    assert data["description"] == "Build things"  # the full new state, not a diff
    assert data["location"] is None


def test_an_update_that_changes_nothing_records_nothing():
    job = new_job()
    job.collect_events()
    assert not job.update({"title": "Backend engineer", "status": "open"}, actor=KEY)
    assert job.collect_events() == []


def test_closing_a_job():
    job = new_job()
    job.update({"status": "closed"}, actor=KEY)
    assert job.status == "closed"
    assert job.version == 2


def test_candidate_created_and_updated_and_moved_to_another_job():
    candidate = new_candidate(external_id="c-1")
    other_job = uuid4()
    assert candidate.update({"email": "ada@lovelace.dev", "job_id": other_job}, actor=KEY)
    assert not candidate.update({"first_name": "Ada"}, actor=KEY)
    events = candidate.collect_events()
    assert types(events) == ["CandidateCreated", "CandidateUpdated"]
    assert events[1].job_id == other_job
    assert (candidate.email, candidate.job_id) == ("ada@lovelace.dev", other_job)


def test_cursors_are_opaque_and_round_trip():
    cursor = encode_cursor(12345)
    assert "12345" not in cursor
    assert decode_cursor(cursor) == 12345


@pytest.mark.parametrize("cursor", ["", "nope", "cDEy!", encode_cursor(1)[:-1] + "~", "cA"])
def test_a_cursor_not_made_by_the_api_is_invalid_input(cursor):
    with pytest.raises(InvalidInput) as error:
        decode_cursor(cursor)
    assert error.value.field == "cursor"
