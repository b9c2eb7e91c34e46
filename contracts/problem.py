"""RFC 9457 problem details: the body of every error response."""

from __future__ import annotations

from marshmallow import Schema, fields

PROBLEM_CONTENT_TYPE = "application/problem+json"


class ProblemSchema(Schema):
    type = fields.String(required=True, metadata={"example": "about:blank"})
    title = fields.String(required=True, metadata={"example": "Unprocessable Content"})
    status = fields.Integer(required=True, metadata={"example": 422})
    detail = fields.String(required=True)
    errors = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={"description": "Messages per field, for validation errors"},
    )
