"""Public API (SPEC 5.3): jobs and candidates, authenticated by API keys."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from uuid import UUID

from flask import Response, g, make_response, request

from contracts import public as schemas
from domain.actors import Actor
from domain.errors import InvalidInput
from domain.recruiting import Candidate, Job
from services.api.auth import require_api_key
from services.api.context import services
from services.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from services.api.request_bodies import Blueprint

F = TypeVar("F", bound=Callable[..., Any])

blp = Blueprint(
    "public", __name__, url_prefix="/v1", description="Jobs and candidates, for your ATS"
)

IDEMPOTENCY_DOC = {
    "parameters": [
        {
            "in": "header",
            "name": IDEMPOTENCY_HEADER,
            "required": False,
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            "description": "Retry-safe POST: the same key with the same body replays the "
            "first response (for 24 hours); with a different body it is refused with 422.",
        }
    ]
}


# -- presenters -----------------------------------------------------------------------


def present_job(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "external_id": job.external_id,
        "title": job.title,
        "description": job.description,
        "location": job.location,
        "department": job.department,
        "employment_type": job.employment_type,
        "status": job.status,
        "created_at": job.created_on,
        "updated_at": job.modified_on,
    }


def present_candidate(candidate: Candidate) -> dict[str, Any]:
    """A candidate as the API shows it; an erased one with its ids only."""
    shown: dict[str, Any] = {
        "id": candidate.id,
        "job_id": candidate.job_id,
        "external_id": candidate.external_id,
        "erased": candidate.erased,
        "created_at": candidate.created_on,
        "updated_at": candidate.modified_on,
    }
    if not candidate.erased:
        shown |= {
            "first_name": candidate.first_name,
            "last_name": candidate.last_name,
            "email": candidate.email,
            "phone": candidate.phone,
            "resume_url": candidate.resume_url,
        }
    return shown


def erase_candidate_everywhere(org_id: UUID, candidate_id: UUID, actor: Actor) -> None:
    """Erase a candidate (SPEC 12) and the API's own copies of them: the stored
    responses an Idempotency-Key would replay."""
    services().application.erase_candidate(org_id, candidate_id, actor)
    services().idempotency.forget_responses_about(org_id, candidate_id)


# -- idempotency ------------------------------------------------------------------------


def idempotent(view: F) -> F:
    """Honour ``Idempotency-Key`` on a POST: replay the first successful response of a
    key, refuse the key with another body; only successful responses are kept."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is None:
            return view(*args, **kwargs)
        if not 1 <= len(key) <= 255 or not key.isascii() or not key.isprintable():
            raise InvalidInput(
                f"{IDEMPOTENCY_HEADER} must be 1 to 255 printable ASCII characters.",
                field=IDEMPOTENCY_HEADER,
            )
        store = services().idempotency
        org_id = g.org_id
        stored = store.claim(org_id, key, _fingerprint())
        if stored is not None:
            replay = Response(stored.body, status=stored.status_code, mimetype="application/json")
            replay.headers["Idempotent-Replayed"] = "true"
            return replay
        try:
            response = make_response(view(*args, **kwargs))
        except BaseException:
            store.release(org_id, key)
            raise
        if 200 <= response.status_code < 300:
            store.complete(org_id, key, response.status_code, response.get_data(as_text=True))
        else:
            store.release(org_id, key)
        return response

    return wrapper  # type: ignore[return-value]


def _fingerprint() -> str:
    """The request a key was first used with: method, path and the JSON body
    (key order and whitespace do not matter)."""
    body = request.get_json(silent=True)
    content = (
        request.get_data()
        if body is None
        else json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    )
    digest = hashlib.sha256(f"{request.method} {request.path}\n".encode())
    digest.update(content)
    return digest.hexdigest()


# -- jobs -------------------------------------------------------------------------------


@blp.route("/jobs", methods=["POST"])
@require_api_key
@idempotent
@blp.arguments(schemas.JobInputSchema)
@blp.response(201, schemas.JobSchema, description="Created")
@blp.alt_response(200, schema=schemas.JobSchema, description="Updated (known external_id)")
@blp.doc(**IDEMPOTENCY_DOC)
def create_job(body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    job, created = services().application.upsert_job(g.org_id, body, g.actor)
    return present_job(job), 201 if created else 200


@blp.route("/jobs", methods=["GET"])
@require_api_key
@blp.arguments(schemas.LookupQuerySchema, location="query")
@blp.response(200, schemas.JobPageSchema)
def list_jobs(query: dict[str, Any]) -> dict[str, Any]:
    """The organization's jobs, newest first; with ``external_id``, the one job (if any)
    with that id of your ATS."""
    jobs, next_cursor = services().application.list_jobs(
        g.org_id, query["limit"], query.get("cursor"), external_id=query.get("external_id")
    )
    return {"items": [present_job(job) for job in jobs], "next_cursor": next_cursor}


@blp.route("/jobs/<uuid:job_id>", methods=["GET"])
@require_api_key
@blp.response(200, schemas.JobSchema)
def get_job(job_id: UUID) -> dict[str, Any]:
    return present_job(services().application.get_job(g.org_id, job_id))


# -- candidates -------------------------------------------------------------------------


@blp.route("/candidates", methods=["POST"])
@require_api_key
@idempotent
@blp.arguments(schemas.CandidateInputSchema)
@blp.response(201, schemas.CandidateSchema, description="Created")
@blp.alt_response(200, schema=schemas.CandidateSchema, description="Updated (known external_id)")
@blp.doc(**IDEMPOTENCY_DOC)
def create_candidate(body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    candidate, created = services().application.upsert_candidate(g.org_id, body, g.actor)
    return present_candidate(candidate), 201 if created else 200


@blp.route("/candidates", methods=["GET"])
@require_api_key
@blp.arguments(schemas.CandidateQuerySchema, location="query")
@blp.response(200, schemas.CandidatePageSchema)
def list_candidates(query: dict[str, Any]) -> dict[str, Any]:
    """The organization's candidates (of one job, with ``job_id``), newest first; with
    ``external_id``, the one candidate (if any) with that id of your ATS."""
    candidates, next_cursor = services().application.list_candidates(
        g.org_id,
        query.get("job_id"),
        query["limit"],
        query.get("cursor"),
        external_id=query.get("external_id"),
    )
    return {"items": [present_candidate(c) for c in candidates], "next_cursor": next_cursor}


@blp.route("/candidates/<uuid:candidate_id>", methods=["GET"])
@require_api_key
@blp.response(200, schemas.CandidateSchema)
def get_candidate(candidate_id: UUID) -> dict[str, Any]:
    return present_candidate(services().application.get_candidate(g.org_id, candidate_id))


@blp.route("/candidates/<uuid:candidate_id>", methods=["DELETE"])
@require_api_key
@blp.response(204)
def delete_candidate(candidate_id: UUID) -> None:
    """Erase the candidate's personal data everywhere (the right to erasure: names,
    e-mail, phone, résumé URL); the candidate stays with its ids and ``erased: true``.
    Erasing again changes nothing. Posting its ``external_id`` later creates a new
    candidate."""
    erase_candidate_everywhere(g.org_id, candidate_id, g.actor)
