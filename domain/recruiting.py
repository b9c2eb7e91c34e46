"""Jobs and candidates, pushed by an organization's ATS through the Public API (SPEC 5.3).

Both are organization-scoped aggregates. An ``external_id`` (the ATS's own id) is unique
per organization: the aggregate id is then derived from (organization, kind, external
id), so "create, or update the one with this external id" needs no index and is
race-free — a concurrent second create of the same id collides on the event store's
unique (originator_id, version) and is retried as an update.

Updates merge: a field that is not given keeps its value, ``None`` clears an optional
field. ``Updated`` events carry every field's new value, so a projection (the
dispatcher's, an auditor's) never needs the earlier events to know the current state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar
from uuid import UUID, uuid4, uuid5

from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError

from domain.actors import Actor
from domain.errors import InvalidInput, NotFound
from domain.paging import page_of_ids
from domain.ports import Catalog, PersonalData

JobStatus = Literal["open", "closed"]
JOB_STATUSES: tuple[JobStatus, ...] = ("open", "closed")

JOB_FIELDS = ("title", "description", "location", "department", "employment_type", "status")
CANDIDATE_FIELDS = ("job_id", "first_name", "last_name", "email", "phone", "resume_url")

# Namespace of ids derived from (organization, kind, external id).
EXTERNAL_ID_NAMESPACE = UUID("5f0c8e7a-2b4d-4c61-9e3f-8a7d6b1c2e90")

# A create that collides with a concurrent create of the same external id is retried
# as an update; two attempts suffice, a few more cover pathological interleavings.
UPSERT_ATTEMPTS = 5


def external_aggregate_id(org_id: UUID, kind: str, external_id: str) -> UUID:
    """The id of the organization's job or candidate with this external id."""
    return uuid5(EXTERNAL_ID_NAMESPACE, f"{org_id}/{kind}/{external_id}")


class Job(Aggregate):
    """A job opening of an organization."""

    @staticmethod
    def create_id(org_id: UUID, external_id: str | None) -> UUID:
        if external_id is None:
            return uuid4()
        return external_aggregate_id(org_id, "Job", external_id)

    @event("Created")
    def __init__(
        self,
        org_id: UUID,
        external_id: str | None,
        title: str,
        description: str | None,
        location: str | None,
        department: str | None,
        employment_type: str | None,
        status: JobStatus,
        actor: Actor,
    ):
        self.org_id = org_id
        self.external_id = external_id
        self.title = title
        self.description = description
        self.location = location
        self.department = department
        self.employment_type = employment_type
        self.status = status

    def update(self, changes: Mapping[str, Any], actor: Actor) -> bool:
        """Apply the given fields; record ``Updated`` only when something changes."""
        new = _merged(self, JOB_FIELDS, changes)
        if new == {name: getattr(self, name) for name in JOB_FIELDS}:
            return False
        self._updated(actor=actor, **new)
        return True

    @event("Updated")
    def _updated(
        self,
        title: str,
        description: str | None,
        location: str | None,
        department: str | None,
        employment_type: str | None,
        status: JobStatus,
        actor: Actor,
    ) -> None:
        self.title = title
        self.description = description
        self.location = location
        self.department = department
        self.employment_type = employment_type
        self.status = status


class Candidate(Aggregate):
    """A candidate for one of the organization's jobs.

    Erasure (the right to erasure, SPEC 12) clears the personal fields for good; the
    infrastructure destroys the key they were stored under, so no earlier event reveals
    them either. An erased candidate stays, with its ids, and cannot change: the same
    ``external_id`` upserted later is a new candidate (``successor_id``)."""

    erased = False

    @staticmethod
    def create_id(org_id: UUID, external_id: str | None, succeeds: UUID | None = None) -> UUID:
        if succeeds is not None:
            return Candidate.successor_id(succeeds)
        if external_id is None:
            return uuid4()
        return external_aggregate_id(org_id, "Candidate", external_id)

    @staticmethod
    def successor_id(erased_id: UUID) -> UUID:
        """The id of the candidate an ATS's ``external_id`` names once the candidate it
        named (``erased_id``) was erased."""
        return uuid5(erased_id, "successor")

    @event("Created")
    def __init__(
        self,
        org_id: UUID,
        job_id: UUID,
        external_id: str | None,
        first_name: str,
        last_name: str,
        email: str,
        phone: str | None,
        resume_url: str | None,
        actor: Actor,
        succeeds: UUID | None = None,
    ):
        """``succeeds``: the erased candidate whose ``external_id`` this one takes over."""
        self.org_id = org_id
        self.job_id = job_id
        self.external_id = external_id
        self.first_name = first_name
        self.last_name = last_name
        self.email = email
        self.phone = phone
        self.resume_url = resume_url

    def erase(self, actor: Actor) -> bool:
        """Record ``Erased`` (once: erasing again changes nothing); return whether it did."""
        if self.erased:
            return False
        self._erased(actor=actor)
        return True

    @event("Erased")
    def _erased(self, actor: Actor) -> None:
        self.erased = True
        self.first_name = self.last_name = self.email = None  # type: ignore[assignment]
        self.phone = self.resume_url = None

    def update(self, changes: Mapping[str, Any], actor: Actor) -> bool:
        """Apply the given fields; record ``Updated`` only when something changes."""
        if self.erased:
            raise InvalidInput("This candidate was erased.", field="id")
        new = _merged(self, CANDIDATE_FIELDS, changes)
        if new == {name: getattr(self, name) for name in CANDIDATE_FIELDS}:
            return False
        self._updated(actor=actor, **new)
        return True

    @event("Updated")
    def _updated(
        self,
        job_id: UUID,
        first_name: str,
        last_name: str,
        email: str,
        phone: str | None,
        resume_url: str | None,
        actor: Actor,
    ) -> None:
        self.job_id = job_id
        self.first_name = first_name
        self.last_name = last_name
        self.email = email
        self.phone = phone
        self.resume_url = resume_url


def _merged(aggregate: Aggregate, names: tuple[str, ...], changes: Mapping[str, Any]) -> dict:
    return {name: changes.get(name, getattr(aggregate, name)) for name in names}


# -- use cases ---------------------------------------------------------------------------

A = TypeVar("A", bound=Aggregate)
Upserted = TypeVar("Upserted", Job, Candidate)


class _Host(Protocol):
    """What the mixin uses of DeveloperTools."""

    catalog: Catalog
    personal_data: PersonalData
    clock: Callable[[], datetime]

    def save(self, *objs: Any, **kwargs: Any) -> Any: ...

    def _get(self, cls: type[A], aggregate_id: UUID) -> A: ...

    def _get_owned(self, cls: type[A], org_id: UUID, aggregate_id: UUID) -> A: ...

    def _read_owned(self, cls: type[A], org_id: UUID, aggregate_id: UUID) -> A: ...

    def _get_many(self, cls: type[A], org_id: UUID, ids: Sequence[UUID]) -> list[A]: ...


class RecruitingUseCases:
    """Mixed into DeveloperTools: jobs and candidates."""

    # -- jobs --------------------------------------------------------------------------

    def upsert_job(
        self: _Host, org_id: UUID, fields: Mapping[str, Any], by: Actor
    ) -> tuple[Job, bool]:
        """Create a job, or update the one with the same ``external_id``.

        Returns the job and whether it was created.
        """
        values = dict(fields)
        title = (values.get("title") or "").strip()
        if not title:
            raise InvalidInput("Title must not be blank.", field="title")
        values["title"] = title
        status = values.get("status") or "open"
        if status not in JOB_STATUSES:
            raise InvalidInput("Status must be open or closed.", field="status")

        def create(erased_before: UUID | None) -> Job:
            return Job(
                org_id=org_id,
                external_id=values.get("external_id"),
                title=title,
                description=values.get("description"),
                location=values.get("location"),
                department=values.get("department"),
                employment_type=values.get("employment_type"),
                status=status,
                actor=by,
            )

        return _upsert(self, Job, org_id, values, create, by)

    def get_job(self: _Host, org_id: UUID, job_id: UUID) -> Job:
        return self._read_owned(Job, org_id, job_id)

    def list_jobs(
        self: _Host,
        org_id: UUID,
        limit: int = 20,
        cursor: str | None = None,
        *,
        external_id: str | None = None,
    ) -> tuple[list[Job], str | None]:
        """A page of the organization's jobs, newest first, and the next page's cursor;
        with ``external_id``, the one job with that id of the ATS (or none)."""
        if external_id is not None:
            return _found_by_external_id(self, Job, org_id, external_id), None
        ids, next_cursor = page_of_ids(self.catalog, org_id, "Job", limit, cursor)
        return self._get_many(Job, org_id, ids), next_cursor

    # -- candidates --------------------------------------------------------------------

    def upsert_candidate(
        self: _Host, org_id: UUID, fields: Mapping[str, Any], by: Actor
    ) -> tuple[Candidate, bool]:
        """Create a candidate, or update the one with the same ``external_id``.

        ``job_id`` must name a job of the same organization. Returns the candidate and
        whether it was created.
        """
        values = dict(fields)
        job_id = values.get("job_id")
        if not isinstance(job_id, UUID) or not _has_job(self, org_id, job_id):
            raise InvalidInput("No such job in this organization.", field="job_id")
        for name in ("first_name", "last_name", "email"):
            value = values.get(name)
            if value is not None:
                values[name] = value.strip()
            if name in values and not values[name]:
                raise InvalidInput(f"{name} must not be blank.", field=name)

        def create(erased_before: UUID | None) -> Candidate:
            for name in ("first_name", "last_name", "email"):
                if not values.get(name):
                    raise InvalidInput(f"{name} is required.", field=name)
            return Candidate(
                org_id=org_id,
                job_id=job_id,
                external_id=values.get("external_id"),
                first_name=values["first_name"],
                last_name=values["last_name"],
                email=values["email"],
                phone=values.get("phone"),
                resume_url=values.get("resume_url"),
                actor=by,
                # after an erased one, a successor (only then: other events keep their shape)
                **({"succeeds": erased_before} if erased_before is not None else {}),
            )

        return _upsert(self, Candidate, org_id, values, create, by)

    def erase_candidate(self: _Host, org_id: UUID, candidate_id: UUID, by: Actor) -> None:
        """Erase a candidate's personal data everywhere (SPEC 12): destroy the key it is
        stored under, then record ``CandidateErased``. Erasing again changes nothing
        (and destroys the key again, should an earlier call have stopped between)."""
        for _ in range(UPSERT_ATTEMPTS):
            candidate = self._get_owned(Candidate, org_id, candidate_id)
            self.personal_data.destroy(str(candidate.id))
            if not candidate.erase(actor=by):
                return
            try:
                self.save(candidate)
            except IntegrityError:
                continue  # changed concurrently: erase the new state
            return
        raise IntegrityError(f"Candidate {candidate_id} kept changing; try again")

    def get_candidate(self: _Host, org_id: UUID, candidate_id: UUID) -> Candidate:
        return self._read_owned(Candidate, org_id, candidate_id)

    def list_candidates(
        self: _Host,
        org_id: UUID,
        job_id: UUID | None = None,
        limit: int = 20,
        cursor: str | None = None,
        *,
        external_id: str | None = None,
    ) -> tuple[list[Candidate], str | None]:
        """A page of the organization's candidates (of one job, when given), newest
        first, and the next page's cursor; with ``external_id``, the one candidate with
        that id of the ATS (or none). A job of another organization is not found."""
        if job_id is not None:
            self._get_owned(Job, org_id, job_id)
        if external_id is not None:
            found = _found_by_external_id(self, Candidate, org_id, external_id)
            return [c for c in found if job_id is None or c.job_id == job_id], None
        ids, next_cursor = page_of_ids(
            self.catalog, org_id, "Candidate", limit, cursor, parent_id=job_id
        )
        return self._get_many(Candidate, org_id, ids), next_cursor


def _found_by_external_id(
    application: _Host, cls: type[Upserted], org_id: UUID, external_id: str
) -> list[Upserted]:
    """The record with this external id, as a list of one or none: its id is derived
    from the external id, so this is one read by the event store's primary key (one
    more per erased candidate the id named before)."""
    current, _ = _named_by(application, cls, cls.create_id(org_id, external_id))
    if current is None or getattr(current, "org_id", None) != org_id:
        return []
    return [current]


def _named_by(
    application: _Host, cls: type[Upserted], aggregate_id: UUID
) -> tuple[Upserted | None, UUID | None]:
    """(the record an external id's derived id names now, or the last erased one, or
    None; the id of that last erased one, which a new record succeeds, or None). An
    erased candidate passes its external id on to its successor."""
    found: Upserted | None = None
    while True:
        try:
            aggregate = application._get(cls, aggregate_id)
        except NotFound:
            return found, None if found is None else found.id
        if not getattr(aggregate, "erased", False):
            return aggregate, None
        found, aggregate_id = aggregate, Candidate.successor_id(aggregate_id)


def _has_job(application: _Host, org_id: UUID, job_id: UUID) -> bool:
    try:
        application._get_owned(Job, org_id, job_id)
    except NotFound:
        return False
    return True


def _upsert(
    application: _Host,
    cls: type[Upserted],
    org_id: UUID,
    values: dict[str, Any],
    create: Callable[[UUID | None], Upserted],
    by: Actor,
) -> tuple[Upserted, bool]:
    external_id = values.get("external_id")
    for _ in range(UPSERT_ATTEMPTS):
        erased_before = None
        if external_id is not None:
            existing, erased_before = _named_by(
                application, cls, cls.create_id(org_id, external_id)
            )
            if existing is not None and not getattr(existing, "erased", False):
                if existing.update(values, actor=by):
                    try:
                        application.save(existing)
                    except IntegrityError:
                        continue  # changed concurrently: apply the changes to the new state
                return existing, False
        aggregate = create(erased_before)
        try:
            application.save(aggregate)
        except IntegrityError:
            continue  # created concurrently with the same external id: update it instead
        return aggregate, True
    raise IntegrityError(f"{cls.__name__} {external_id!r} kept changing; try again")
