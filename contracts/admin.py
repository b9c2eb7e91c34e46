"""Bodies of the admin API (SPEC 5.1 and 5.2)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from contracts.field_rules import ExpiryDateTime, StrictBoolean, not_blank


class OrganizationCreateSchema(Schema):
    """Also what `tenzo orgs create NAME` checks, so both ways take the same names."""

    name = fields.String(required=True, validate=[validate.Length(min=1, max=200), not_blank])


class OrganizationCreatedSchema(Schema):
    id = fields.UUID(required=True)
    name = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    admin_token = fields.String(
        required=True, metadata={"description": "Shown once; store it in a secret manager"}
    )


class ApiKeyCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    expires_at = ExpiryDateTime(
        allow_none=True,
        metadata={
            "description": "ISO-8601, in the future; UTC when no offset is given. A date "
            "alone (2027-01-31) means the end of that day in UTC: the key works all that "
            "day and expires at 2027-02-01T00:00:00Z."
        },
    )


class ApiKeySchema(Schema):
    id = fields.UUID(required=True)
    name = fields.String(required=True)
    key_hint = fields.String(required=True, metadata={"example": "tenzo_pk_…a1B2"})
    created_at = fields.DateTime(required=True)
    expires_at = fields.DateTime(allow_none=True)
    expires_soon = fields.Boolean(
        required=True,
        metadata={"description": "true for an active key whose expiry is within 7 days"},
    )
    last_used_at = fields.DateTime(allow_none=True)
    usage_count = fields.Integer(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["active", "expired", "revoked"]))
    revoked_at = fields.DateTime(allow_none=True)
    rolled_from = fields.UUID(
        allow_none=True, metadata={"description": "the key this one was rolled from"}
    )
    rolled_to = fields.UUID(
        allow_none=True,
        metadata={"description": "the key this one was rolled to (it expires at expires_at)"},
    )


class ApiKeyCreatedSchema(ApiKeySchema):
    key = fields.String(
        required=True, metadata={"description": "The key itself: shown in this response only"}
    )


class ApiKeyRollSchema(Schema):
    expires_in_hours = fields.Integer(
        load_default=24,
        strict=True,
        validate=validate.Range(min=0, max=168),
        metadata={
            "description": "How long the old key keeps working, 0 to 168 hours (never past "
            "its own expiry); 0 ends it at once."
        },
    )


class ApiKeyRenameSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))


class AdminTokenSchema(Schema):
    id = fields.UUID(required=True)
    name = fields.String(required=True)
    token_hint = fields.String(required=True, metadata={"example": "tenzo_admin_…a1B2"})
    created_at = fields.DateTime(required=True)
    last_used_at = fields.DateTime(allow_none=True)
    status = fields.String(required=True, validate=validate.OneOf(["active", "revoked"]))
    revoked_at = fields.DateTime(allow_none=True)


class AdminTokenCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))


class AdminTokenCreatedSchema(AdminTokenSchema):
    token = fields.String(
        required=True, metadata={"description": "The token itself: shown in this response only"}
    )


class AdminTokenListSchema(Schema):
    items = fields.List(fields.Nested(AdminTokenSchema), required=True)


KEY_PAGE_SIZE_MAX = 100


class ApiKeyQuerySchema(Schema):
    limit = fields.Integer(
        load_default=KEY_PAGE_SIZE_MAX, validate=validate.Range(min=1, max=KEY_PAGE_SIZE_MAX)
    )
    cursor = fields.String(
        validate=validate.Length(min=1, max=200),
        metadata={"description": "next_cursor of the previous page"},
    )


class ApiKeyListSchema(Schema):
    items = fields.List(fields.Nested(ApiKeySchema), required=True)
    next_cursor = fields.String(allow_none=True, metadata={"description": "null on the last page"})


class WebhookPutSchema(Schema):
    url = fields.String(required=True, validate=validate.Length(min=1, max=2048))
    secret = fields.String(allow_none=True, validate=validate.Length(min=1, max=256))
    enabled = StrictBoolean(load_default=False)


class WebhookPatchSchema(Schema):
    url = fields.String(validate=validate.Length(min=1, max=2048))
    secret = fields.String(
        allow_none=True,
        validate=validate.Length(min=1, max=256),
        metadata={"description": "null removes the secret"},
    )
    enabled = StrictBoolean()


class WebhookSchema(Schema):
    url = fields.String(required=True)
    enabled = fields.Boolean(required=True)
    secret_set = fields.Boolean(required=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)
    previous_secret_expires_at = fields.DateTime(
        metadata={
            "description": "Only while a rotated secret's overlap lasts: when the previous "
            "secret stops signing deliveries"
        },
    )


class WebhookSecretRotateSchema(Schema):
    secret = fields.String(
        validate=validate.Length(min=1, max=256),
        metadata={
            "description": "The new secret; generated (whsec_…, shown once) when absent. "
            "A whsec_<base64> secret is keyed with its decoded bytes, as Standard Webhooks "
            "and Svix do"
        },
    )
    overlap_hours = fields.Integer(
        strict=True,
        load_default=24,
        validate=validate.Range(min=0, max=168),
        metadata={"description": "How long the current secret keeps signing deliveries too"},
    )


class WebhookSecretRotatedSchema(Schema):
    secret_set = fields.Boolean(required=True)
    previous_secret_expires_at = fields.DateTime(
        allow_none=True,
        metadata={
            "description": "Until then every delivery is signed with both secrets; null "
            "when no secret was set before"
        },
    )
    secret = fields.String(
        metadata={"description": "Only when generated: shown in this response only"}
    )


class EndpointHealthSchema(Schema):
    """SPEC 10: how the endpoint has answered, from a projection of delivery outcomes."""

    deliveries_24h = fields.Integer(
        required=True, metadata={"description": "deliveries that ended in the last 24 hours"}
    )
    succeeded_24h = fields.Integer(required=True)
    failed_24h = fields.Integer(required=True)
    success_rate_24h = fields.Float(
        allow_none=True,
        metadata={"description": "succeeded_24h / deliveries_24h; null without deliveries"},
    )
    consecutive_failures = fields.Integer(
        required=True,
        metadata={"description": "failed deliveries since the last success (or re-enabling)"},
    )
    last_success_at = fields.DateTime(allow_none=True)
    last_failure_at = fields.DateTime(allow_none=True)
    p50_ms_24h = fields.Integer(
        allow_none=True,
        metadata={"description": "median attempt duration of the last 24 hours, in ms"},
    )


class WebhookStatusSchema(WebhookSchema):
    """The webhook as GET shows it: with its health, and why the system disabled it."""

    disabled_reason = fields.String(
        allow_none=True,
        metadata={"description": "set while the system has disabled delivery (auto-disable)"},
    )
    health = fields.Nested(EndpointHealthSchema, required=True)


MAX_POSITION = 2**63 - 1  # positions are 64-bit integers in both event stores


class EventQuerySchema(Schema):
    after = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_POSITION))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    type = fields.String(
        validate=[
            validate.Length(min=1, max=100),
            validate.Regexp(r"^[A-Za-z][A-Za-z0-9]*$", error="Not an event type name."),
        ],
        metadata={"example": "ApiKeyRevoked"},
    )
    aggregate_id = fields.UUID()
