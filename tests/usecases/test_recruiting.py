"""Jobs and candidates pushed by an organization's ATS: upsert by external id, list, get."""

from __future__ import annotations

import uuid

import pytest

from domain.errors import InvalidInput, NotFound
from tests.support.applications import position, recorded_since, records_nothing


@pytest.fixture
def job(application, org):
    job, _ = application.upsert_job(org.id, {"external_id": "J-1", "title": "Engineer"}, org.admin)
    return job


def candidate_fields(job, **changes):
    fields = {"job_id": job.id, "first_name": "Ada", "last_name": "L", "email": "ada@x.example"}
    return fields | changes


def test_a_job_is_created_then_updated_by_its_external_id(application, org):
    before = position(application)

    job, created = application.upsert_job(
        org.id, {"external_id": "J-1", "title": " Engineer ", "location": "Lyon"}, org.admin
    )

    assert created and recorded_since(application, before) == ["Job.Created"]
    assert (job.title, job.status, job.location) == ("Engineer", "open", "Lyon")
    before = position(application)
    same, created = application.upsert_job(
        org.id, {"external_id": "J-1", "title": "Engineer", "status": "closed"}, org.admin
    )
    assert not created and same.id == job.id
    assert recorded_since(application, before) == ["Job.Updated"]
    shown = application.get_job(org.id, job.id)
    assert (shown.status, shown.location) == ("closed", "Lyon")  # not given: kept
    with records_nothing(application):
        application.upsert_job(org.id, {"external_id": "J-1", "title": "Engineer"}, org.admin)


def test_jobs_without_an_external_id_are_always_new(application, org):
    first, _ = application.upsert_job(org.id, {"title": "Designer"}, org.admin)
    second, created = application.upsert_job(org.id, {"title": "Designer"}, org.admin)
    assert created and first.id != second.id


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "  "}, "title"),
        ({"title": "x", "status": "x"}, "status"),
    ],
)
def test_a_bad_job_is_refused_and_records_nothing(application, org, job, fields, field):
    with records_nothing(application), pytest.raises(InvalidInput) as refused:
        application.upsert_job(org.id, {"external_id": "J-1"} | fields, org.admin)
    assert refused.value.field == field
    assert application.get_job(org.id, job.id).title == "Engineer"


def test_jobs_are_listed_newest_first_and_paged(application, org):
    jobs = [application.upsert_job(org.id, {"title": f"Job {n}"}, org.admin)[0] for n in range(3)]

    first, cursor = application.list_jobs(org.id, limit=2)
    rest, last = application.list_jobs(org.id, limit=2, cursor=cursor)

    assert [j.id for j in first + rest] == [j.id for j in reversed(jobs)] and last is None


def test_candidates_are_upserted_and_listed_by_job(application, org, job):
    other_job, _ = application.upsert_job(org.id, {"title": "Other"}, org.admin)
    before = position(application)

    ada, created = application.upsert_candidate(
        org.id, candidate_fields(job, external_id="C-1"), org.admin
    )
    bob, _ = application.upsert_candidate(
        org.id, candidate_fields(other_job, first_name="Bob"), org.admin
    )

    assert created and recorded_since(application, before) == [
        "Candidate.Created",
        "Candidate.Created",
    ]
    assert [c.id for c in application.list_candidates(org.id, job_id=job.id)[0]] == [ada.id]
    assert [c.id for c in application.list_candidates(org.id)[0]] == [bob.id, ada.id]
    moved, created = application.upsert_candidate(
        org.id, {"external_id": "C-1", "job_id": other_job.id}, org.admin
    )
    assert not created and moved.first_name == "Ada"
    assert [c.id for c in application.list_candidates(org.id, job_id=job.id)[0]] == []
    assert {c.id for c in application.list_candidates(org.id, job_id=other_job.id)[0]} == {
        ada.id,
        bob.id,
    }
    assert application.get_candidate(org.id, ada.id).job_id == other_job.id


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"job_id": uuid.uuid4()}, "job_id"),
        ({"job_id": "J-1"}, "job_id"),
        ({"first_name": " "}, "first_name"),
        ({"email": None}, "email"),
    ],
)
def test_a_bad_candidate_is_refused_and_records_nothing(application, org, job, changes, field):
    with records_nothing(application), pytest.raises(InvalidInput) as refused:
        application.upsert_candidate(org.id, candidate_fields(job, **changes), org.admin)
    assert refused.value.field == field


def test_another_organizations_jobs_and_candidates_do_not_exist(application, org, other_org, job):
    ada, _ = application.upsert_candidate(org.id, candidate_fields(job), org.admin)

    with records_nothing(application):
        with pytest.raises(NotFound):
            application.get_job(other_org.id, job.id)
        with pytest.raises(NotFound):
            application.get_candidate(other_org.id, ada.id)
        with pytest.raises(NotFound):
            application.list_candidates(other_org.id, job_id=job.id)
        with pytest.raises(InvalidInput):
            application.upsert_candidate(other_org.id, candidate_fields(job), other_org.admin)
    assert application.list_jobs(other_org.id) == ([], None)


# -- erasure (SPEC 12) ---------------------------------------------------------------------


def test_an_erased_candidate_keeps_its_ids_and_its_external_id_names_a_successor(
    application, org, other_org, job
):
    fields = candidate_fields(job, external_id="C-1", phone="+1 555", resume_url="https://r.x/cv")
    candidate, _ = application.upsert_candidate(org.id, fields, org.admin)
    with pytest.raises(NotFound):
        application.erase_candidate(other_org.id, candidate.id, other_org.admin)

    application.erase_candidate(org.id, candidate.id, org.admin)
    with records_nothing(application):
        application.erase_candidate(org.id, candidate.id, org.admin)  # again: nothing more

    erased = application.get_candidate(org.id, candidate.id)
    assert erased.erased and (erased.external_id, erased.job_id) == ("C-1", job.id)
    assert [erased.first_name, erased.email, erased.phone, erased.resume_url] == [None] * 4
    history = application.event_history(org.id, aggregate_id=candidate.id)
    assert [item["type"] for item in history] == ["CandidateCreated", "CandidateErased"]
    assert history[1]["actor"] == org.admin and history[1]["data"] == {}
    assert history[0]["data"]["email"] == "[erased]" and set(history[0]["sealed"]) == {
        "first_name",
        "last_name",
        "email",
        "phone",
        "resume_url",
    }

    successor, created = application.upsert_candidate(org.id, fields, org.admin)
    assert created and successor.id != candidate.id and successor.email == "ada@x.example"
    again, created = application.upsert_candidate(org.id, fields | {"last_name": "M"}, org.admin)
    assert not created and again.id == successor.id and again.last_name == "M"
    found, _ = application.list_candidates(org.id, external_id="C-1")
    assert [c.id for c in found] == [successor.id]
    assert application.event_history(org.id, aggregate_id=successor.id)[0]["data"][
        "succeeds"
    ] == str(candidate.id)
