"""Every error as RFC 9457 problem+json: HTTP errors, validation and domain errors."""

from __future__ import annotations

import json
import logging
from typing import Any

from eventsourcing.persistence import RecordConflictError
from flask import Flask, Response, current_app
from werkzeug.exceptions import HTTPException

from contracts.problem import PROBLEM_CONTENT_TYPE
from domain.errors import (
    CatalogBehind,
    Conflict,
    DomainError,
    InvalidInput,
    NotFound,
    Unauthorized,
)
from services.api import problem_types as types
from services.api.problem_types import ProblemType

log = logging.getLogger("tenzo.api")

UNAUTHORIZED_DETAIL = "A valid bearer credential is required in the Authorization header."


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    type: ProblemType | None = None,
    errors: dict[str, list[str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """An RFC 9457 answer; ``type`` is one of services/api/problem_types.py (whose URI
    serves a page explaining it), or None for ``about:blank``."""
    uri = "about:blank" if type is None else type.uri
    body: dict[str, Any] = {"type": uri, "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def unauthorized(detail: str = UNAUTHORIZED_DETAIL) -> Response:
    """A 401: ``detail`` says which mistake it is (domain/credential_refusals.py)."""
    return problem(
        401,
        "Unauthorized",
        detail,
        type=types.UNAUTHORIZED,
        headers={"WWW-Authenticate": "Bearer"},  # exactly as SPEC 5.3 writes it
    )


def flatten_errors(messages: Any) -> dict[str, list[str]]:
    """webargs errors ({"json": {"field": [...]}}) as {"field": [...]}, nested as a.b."""
    flat: dict[str, list[str]] = {}

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                # marshmallow files whole-body errors ("Invalid input type.") under _schema
                name = "body" if key == "_schema" and not path else str(key)
                walk(item, f"{path}.{key}" if path else name)
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            flat.setdefault(path or "body", []).extend(value)
        else:
            flat.setdefault(path or "body", []).append(str(value))

    for location in messages.values() if isinstance(messages, dict) else [messages]:
        walk(location, "")
    return flat


def http_problem(error: HTTPException) -> Response:
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    messages = data.get("messages") or data.get("errors")
    if status == 422 and messages:
        errors = flatten_errors(messages)
        return problem(
            422,
            "Unprocessable Content",
            "The request body or parameters are not valid: "
            + "; ".join(f"{field}: {' '.join(texts)}" for field, texts in errors.items()),
            type=types.VALIDATION_ERROR,
            errors=errors,
        )
    if status == 400 and messages:
        detail = " ".join(flatten_errors(messages).get("body", []))
        return problem(
            400,
            "Bad Request",
            detail or "The request could not be read.",
            type=types.MALFORMED_REQUEST,
        )
    if status == 401:
        return unauthorized()
    if status == 413:
        limit = (current_app.config.get("MAX_CONTENT_LENGTH") or 0) / (1024 * 1024)
        detail = f"The request body is larger than the limit of {limit:g} MiB."
        return problem(413, "Content Too Large", detail, type=types.CONTENT_TOO_LARGE)
    headers = dict(data.get("headers") or {})
    allowed = getattr(error, "valid_methods", None)
    if status == 405 and allowed:
        headers["Allow"] = ", ".join(allowed)
    detail = data.get("message") or error.description or error.name
    known = types.NOT_FOUND if status == 404 else None
    return problem(status, error.name, str(detail), type=known, headers=headers)


def domain_problem(error: DomainError) -> Response:
    if isinstance(error, Unauthorized):
        log.info("credential refused (%s): %s", error.reason, error)
        return unauthorized(str(error))
    if isinstance(error, NotFound):
        detail = f"No such {error} in this organization."
        return problem(404, "Not Found", detail, type=types.NOT_FOUND)
    if isinstance(error, InvalidInput):
        field = error.field or "body"
        return problem(
            422,
            "Unprocessable Content",
            str(error),
            type=types.VALIDATION_ERROR,
            errors={field: [str(error)]},
        )
    if isinstance(error, Conflict):
        return problem(409, "Conflict", str(error), type=types.CONFLICT)
    if isinstance(error, CatalogBehind):
        log.warning("catalog behind: %s", error)
        return problem(503, "Service Unavailable", str(error), headers={"Retry-After": "1"})
    return problem(400, "Bad Request", str(error))


def conflict_problem(error: RecordConflictError) -> Response:
    """Another request changed the same aggregate between our read and our write."""
    log.info("concurrent change refused: %s", type(error).__name__)
    return problem(
        409,
        "Conflict",
        "Another request changed this resource at the same time; nothing was changed. "
        "Read it again and retry.",
        type=types.CONFLICT,
    )


def unexpected_problem(error: Exception) -> Response:
    log.exception("unhandled error")
    return problem(500, "Internal Server Error", "Something went wrong on our side.")


def register_problem_handlers(app: Flask) -> None:
    app.register_error_handler(HTTPException, http_problem)
    app.register_error_handler(DomainError, domain_problem)
    app.register_error_handler(RecordConflictError, conflict_problem)
    app.register_error_handler(Exception, unexpected_problem)
