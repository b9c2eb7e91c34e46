"""Bodies of the Public API (SPEC 5.3): jobs and candidates pushed by an ATS.

Unknown fields are refused (marshmallow's default, RAISE) and every string has a
bound, so an oversized value is a 422 naming the field, never a stored event.
``employment_type`` is free text of at most 50 characters (ATSs name these
differently: "Full-time", "FULL_TIME", "Werkstudent"…); it is stored as given.
In an update (a POST whose ``external_id`` already exists) a field that is not given
keeps its value and ``null`` clears an optional one.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from contracts.field_rules import not_blank

EXTERNAL_ID_MAX = 255
TITLE_MAX = 200
DESCRIPTION_MAX = 10_000
SHORT_TEXT_MAX = 200
EMPLOYMENT_TYPE_MAX = 50
NAME_MAX = 100
EMAIL_MAX = 254
PHONE_MAX = 50
URL_MAX = 2048
PAGE_SIZE_MAX = 100


def _text(maximum: int, *, required: bool = False, **kwargs: Any) -> fields.String:
    """A string of at most ``maximum`` characters; required ones must not be blank."""
    checks: list[Any] = [validate.Length(max=maximum)]
    if required:
        checks.append(not_blank)
    return fields.String(required=required, allow_none=not required, validate=checks, **kwargs)


# An ATS's own job id where ours is expected is the likeliest mistake here: say what to do.
JOB_ID_NOT_A_UUID = (
    "Not a job id: job_id is the id this API gave the job (a UUID, the id field of "
    "POST /v1/jobs or GET /v1/jobs), not your ATS's id. Look the job up by your id with "
    "GET /v1/jobs?external_id=<your id> and use its id."
)


def _job_id(**kwargs: Any) -> fields.UUID:
    return fields.UUID(error_messages={"invalid_uuid": JOB_ID_NOT_A_UUID}, **kwargs)


def _external_id(description: str, **kwargs: Any) -> fields.String:
    return fields.String(
        validate=[validate.Length(min=1, max=EXTERNAL_ID_MAX), not_blank],
        metadata={"description": description},
        **kwargs,
    )


_PHONE = validate.Regexp(
    rf"^\+?[0-9 ()./-]{{3,{PHONE_MAX}}}$", error="Not a phone number (digits, spaces, + ( ) . / -)."
)


class JobInputSchema(Schema):
    external_id = _external_id("Your ATS's id; posting it again updates that job")
    title = _text(TITLE_MAX, required=True)
    description = _text(DESCRIPTION_MAX)
    location = _text(SHORT_TEXT_MAX)
    department = _text(SHORT_TEXT_MAX)
    employment_type = _text(
        EMPLOYMENT_TYPE_MAX, metadata={"description": "Free text, e.g. full-time"}
    )
    status = fields.String(validate=validate.OneOf(["open", "closed"]))


class JobSchema(Schema):
    id = fields.UUID(required=True)
    external_id = fields.String(allow_none=True)
    title = fields.String(required=True)
    description = fields.String(allow_none=True)
    location = fields.String(allow_none=True)
    department = fields.String(allow_none=True)
    employment_type = fields.String(allow_none=True)
    status = fields.String(required=True, validate=validate.OneOf(["open", "closed"]))
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class CandidateInputSchema(Schema):
    job_id = _job_id(
        required=True,
        metadata={"description": "The id of a job of your organization (not your ATS's id)"},
    )
    external_id = _external_id("Your ATS's id; posting it again updates that candidate")
    first_name = _text(NAME_MAX, required=True)
    last_name = _text(NAME_MAX, required=True)
    email = fields.Email(required=True, validate=validate.Length(max=EMAIL_MAX))
    phone = fields.String(allow_none=True, validate=_PHONE)
    resume_url = fields.Url(
        allow_none=True,
        schemes={"https", "http"},
        validate=validate.Length(max=URL_MAX),
        metadata={"format": "uri", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://"},
    )


class CandidateSchema(Schema):
    id = fields.UUID(required=True)
    job_id = fields.UUID(required=True)
    external_id = fields.String(allow_none=True)
    erased = fields.Boolean(
        required=True,
        metadata={"description": "true: personal data erased (the fields below are absent)"},
    )
    first_name = fields.String()
    last_name = fields.String()
    email = fields.String()
    phone = fields.String(allow_none=True)
    resume_url = fields.String(allow_none=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class PageQuerySchema(Schema):
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=PAGE_SIZE_MAX))
    cursor = fields.String(
        validate=validate.Length(min=1, max=200),
        metadata={"description": "next_cursor of the previous page"},
    )


class LookupQuerySchema(PageQuerySchema):
    """A page, or the one record with the ATS's own id (SPEC 13)."""

    external_id = _external_id("Only the record with this id of your ATS (at most one)")

    @validates_schema
    def _one_record_has_no_pages(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "external_id" in data and "cursor" in data:
            raise ValidationError(
                "external_id finds at most one record, so there is no next page.",
                field_name="cursor",
            )


class CandidateQuerySchema(LookupQuerySchema):
    job_id = _job_id(metadata={"description": "Only the candidates of this job"})


class JobPageSchema(Schema):
    items = fields.List(fields.Nested(JobSchema), required=True)
    next_cursor = fields.String(allow_none=True, metadata={"description": "null on the last page"})


class CandidatePageSchema(Schema):
    items = fields.List(fields.Nested(CandidateSchema), required=True)
    next_cursor = fields.String(allow_none=True, metadata={"description": "null on the last page"})
