"""Admin API (SPEC 5.1, 5.2): organizations, API keys, webhook, event history."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from uuid import UUID

from flask import Response, g, stream_with_context

from contracts import admin as schemas
from contracts.audit import AuditHeadSchema, AuditPageSchema
from domain.api_keys import ApiKey
from domain.application import UNSET
from domain.organizations import AdminToken
from domain.webhooks import Webhook
from services.api.auth import require_admin, require_operator
from services.api.context import services
from services.api.public import erase_candidate_everywhere
from services.api.request_bodies import Blueprint
from services.api.usage import Usage

blp = Blueprint(
    "admin", __name__, url_prefix="/admin/v1", description="Organization administration"
)


# -- presenters -----------------------------------------------------------------------


def present_keys(keys: list[ApiKey], now: datetime) -> list[dict[str, Any]]:
    """Keys as the API shows them, their usage read in one query for the whole list."""
    usages = services().usage.read_many(key.id for key in keys)
    return [_present_key(key, now, usages[key.id]) for key in keys]


def present_key(key: ApiKey, now: datetime) -> dict[str, Any]:
    return present_keys([key], now)[0]


def _present_key(key: ApiKey, now: datetime, usage: Usage) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "key_hint": key.key_hint,
        "created_at": key.created_on,
        "expires_at": key.expires_at,
        "expires_soon": key.expires_soon(now),
        "last_used_at": usage.last_used_at,
        "usage_count": usage.count,
        "status": key.status(now),
        "revoked_at": key.revoked_at,
        "rolled_from": key.rolled_from,
        "rolled_to": key.rolled_to,
    }


def present_tokens(tokens: list[AdminToken]) -> list[dict[str, Any]]:
    """Admin tokens as the API shows them; ``last_used_at`` from the usage counter that
    counts API keys' uses (batched: no event, no write per request)."""
    usages = services().usage.read_many(token.id for token in tokens)
    return [
        {
            "id": token.id,
            "name": token.name,
            "token_hint": token.token_hint,
            "created_at": token.created_on,
            "last_used_at": usages[token.id].last_used_at,
            "status": token.status,
            "revoked_at": token.revoked_at,
        }
        for token in tokens
    ]


def present_token(token: AdminToken) -> dict[str, Any]:
    return present_tokens([token])[0]


def present_webhook(webhook: Webhook, now: datetime) -> dict[str, Any]:
    presented = {
        "url": webhook.url,
        "enabled": webhook.enabled,
        "secret_set": webhook.secret_set,
        # A webhook configured again after a deletion is new: not the aggregate's birth.
        "created_at": webhook.configured_on,
        "updated_at": webhook.modified_on,
    }
    if webhook.previous_secret_valid(now):  # only during a rotation's overlap (SPEC 9)
        presented["previous_secret_expires_at"] = webhook.previous_secret_expires_at
    return presented


# -- organizations (operator) ---------------------------------------------------------


@blp.route("/organizations", methods=["POST"])
@require_operator
@blp.arguments(schemas.OrganizationCreateSchema)
@blp.response(201, schemas.OrganizationCreatedSchema)
def create_organization(body: dict[str, Any]) -> dict[str, Any]:
    organization, token = services().application.create_organization(body["name"], g.actor)
    return {
        "id": organization.id,
        "name": organization.name,
        "created_at": organization.created_on,
        "admin_token": token,
    }


@blp.route("/organizations/<uuid:org_id>/admin-tokens", methods=["POST"])
@require_operator
@blp.arguments(schemas.AdminTokenCreateSchema)
@blp.response(201, schemas.AdminTokenCreatedSchema)
def issue_organization_admin_token(body: dict[str, Any], org_id: UUID) -> dict[str, Any]:
    """Issue an admin token for an organization: how the operator recovers a lost one."""
    token, plaintext = services().application.issue_admin_token(org_id, body["name"], g.actor)
    return present_token(token) | {"token": plaintext}


# -- admin tokens ---------------------------------------------------------------------


@blp.route("/admin-tokens", methods=["GET"])
@require_admin
@blp.response(200, schemas.AdminTokenListSchema)
def list_admin_tokens() -> dict[str, Any]:
    return {"items": present_tokens(services().application.list_admin_tokens(g.org_id))}


@blp.route("/admin-tokens", methods=["POST"])
@require_admin
@blp.arguments(schemas.AdminTokenCreateSchema)
@blp.response(201, schemas.AdminTokenCreatedSchema)
def issue_admin_token(body: dict[str, Any]) -> dict[str, Any]:
    token, plaintext = services().application.issue_admin_token(g.org_id, body["name"], g.actor)
    return present_token(token) | {"token": plaintext}


@blp.route("/admin-tokens/<uuid:token_id>/revoke", methods=["POST"])
@require_admin
@blp.response(200, schemas.AdminTokenSchema)
def revoke_admin_token(token_id: UUID) -> dict[str, Any]:
    return present_token(services().application.revoke_admin_token(g.org_id, token_id, g.actor))


# -- API keys -------------------------------------------------------------------------


@blp.route("/api-keys", methods=["POST"])
@require_admin
@blp.arguments(schemas.ApiKeyCreateSchema)
@blp.response(201, schemas.ApiKeyCreatedSchema)
def create_api_key(body: dict[str, Any]) -> dict[str, Any]:
    application = services().application
    key, plaintext = application.create_api_key(
        g.org_id, body["name"], body.get("expires_at"), g.actor
    )
    return present_key(key, application.clock()) | {"key": plaintext}


@blp.route("/api-keys", methods=["GET"])
@require_admin
@blp.arguments(schemas.ApiKeyQuerySchema, location="query")
@blp.response(200, schemas.ApiKeyListSchema)
def list_api_keys(query: dict[str, Any]) -> dict[str, Any]:
    application = services().application
    keys, next_cursor = application.list_api_keys(g.org_id, query["limit"], query.get("cursor"))
    return {"items": present_keys(keys, application.clock()), "next_cursor": next_cursor}


@blp.route("/api-keys/<uuid:key_id>", methods=["GET"])
@require_admin
@blp.response(200, schemas.ApiKeySchema)
def get_api_key(key_id: UUID) -> dict[str, Any]:
    application = services().application
    return present_key(application.get_api_key(g.org_id, key_id), application.clock())


@blp.route("/api-keys/<uuid:key_id>", methods=["PATCH"])
@require_admin
@blp.arguments(schemas.ApiKeyRenameSchema)
@blp.response(200, schemas.ApiKeySchema)
def rename_api_key(body: dict[str, Any], key_id: UUID) -> dict[str, Any]:
    application = services().application
    key = application.rename_api_key(g.org_id, key_id, body["name"], g.actor)
    return present_key(key, application.clock())


@blp.route("/api-keys/<uuid:key_id>/roll", methods=["POST"])
@require_admin
@blp.arguments(schemas.ApiKeyRollSchema)
@blp.response(201, schemas.ApiKeyCreatedSchema)
def roll_api_key(body: dict[str, Any], key_id: UUID) -> dict[str, Any]:
    """Roll a key: a new key of the same name (shown once); the old one keeps working
    for ``expires_in_hours`` (never past its own expiry), then is refused."""
    application = services().application
    key, plaintext = application.roll_api_key(g.org_id, key_id, body["expires_in_hours"], g.actor)
    return present_key(key, application.clock()) | {"key": plaintext}


@blp.route("/api-keys/<uuid:key_id>/revoke", methods=["POST"])
@require_admin
@blp.response(200, schemas.ApiKeySchema)
def revoke_api_key(key_id: UUID) -> dict[str, Any]:
    application = services().application
    return present_key(application.revoke_api_key(g.org_id, key_id, g.actor), application.clock())


# -- webhook --------------------------------------------------------------------------


@blp.route("/webhook", methods=["GET"])
@require_admin
@blp.response(200, schemas.WebhookStatusSchema)
def get_webhook() -> dict[str, Any]:
    """The webhook, its health over the last 24 hours, and why it was disabled if the
    system disabled it (SPEC 10)."""
    return present_webhook_status(g.org_id)


def present_webhook_status(org_id: UUID) -> dict[str, Any]:
    application = services().application
    webhook = application.get_webhook(org_id)
    health = application.webhook_health(org_id)
    return present_webhook(webhook, application.clock()) | {
        "disabled_reason": None if webhook.enabled else webhook.disabled_reason,
        "health": vars(health) | {"success_rate_24h": health.success_rate_24h},
    }


@blp.route("/webhook", methods=["PUT"])
@require_admin
@blp.arguments(schemas.WebhookPutSchema)
@blp.response(200, schemas.WebhookSchema)
@blp.alt_response(201, schema=schemas.WebhookSchema, description="Created")
def configure_webhook(body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    application = services().application
    webhook, created = application.configure_webhook(
        g.org_id, body["url"], body.get("secret"), body["enabled"], g.actor
    )
    return present_webhook(webhook, application.clock()), 201 if created else 200


@blp.route("/webhook", methods=["PATCH"])
@require_admin
@blp.arguments(schemas.WebhookPatchSchema)
@blp.response(200, schemas.WebhookSchema)
def change_webhook(body: dict[str, Any]) -> dict[str, Any]:
    application = services().application
    webhook = application.change_webhook(
        g.org_id,
        g.actor,
        url=body.get("url"),
        secret=body.get("secret", UNSET),
        enabled=body.get("enabled"),
    )
    return present_webhook(webhook, application.clock())


@blp.route("/webhook/secret/rotate", methods=["POST"])
@require_admin
@blp.arguments(schemas.WebhookSecretRotateSchema)
@blp.response(200, schemas.WebhookSecretRotatedSchema)
def rotate_webhook_secret(body: dict[str, Any]) -> dict[str, Any]:
    """Replace the secret; the current one signs deliveries too until
    ``previous_secret_expires_at`` (SPEC 9)."""
    webhook, generated, expires_at = services().application.rotate_webhook_secret(
        g.org_id, g.actor, secret=body.get("secret"), overlap_hours=body["overlap_hours"]
    )
    answer: dict[str, Any] = {
        "secret_set": webhook.secret_set,
        "previous_secret_expires_at": expires_at,
    }
    if generated is not None:
        answer["secret"] = generated
    return answer


@blp.route("/webhook", methods=["DELETE"])
@require_admin
@blp.response(204)
def delete_webhook() -> None:
    services().application.delete_webhook(g.org_id, g.actor)


# -- candidates -----------------------------------------------------------------------


@blp.route("/candidates/<uuid:candidate_id>/erase", methods=["POST"])
@require_admin
@blp.response(204)
def erase_candidate(candidate_id: UUID) -> None:
    """Erase a candidate's personal data everywhere (docs/audit.md), as
    ``DELETE /v1/candidates/{id}`` does for an API key. Erasing again changes nothing."""
    erase_candidate_everywhere(g.org_id, candidate_id, g.actor)


# -- event history --------------------------------------------------------------------


@blp.route("/events", methods=["GET"])
@require_admin
@blp.arguments(schemas.EventQuerySchema, location="query")
@blp.response(200, AuditPageSchema)
def list_events(query: dict[str, Any]) -> dict[str, Any]:
    items = services().application.event_history(g.org_id, **query)
    next_after = items[-1]["position"] if len(items) == query["limit"] else None
    return {"items": items, "next_after": next_after}


@blp.route("/events/head", methods=["GET"])
@require_admin
@blp.response(200, AuditHeadSchema)
def get_events_head() -> dict[str, Any]:
    """The newest item of the organization's hash chain (docs/audit.md): keep it, and
    `tenzo audit verify --head` proves later that the history up to it is unchanged."""
    position, digest = services().application.event_history_head(g.org_id)
    return {"position": position, "hash": digest}


@blp.route("/events/export", methods=["GET"])
@require_admin
@blp.arguments(schemas.EventQuerySchema(only=("after", "type", "aggregate_id")), location="query")
@blp.response(
    200,
    description="The history after a position (all of it by default) as NDJSON, "
    "one audit item per line",
)
def export_events(query: dict[str, Any]) -> Response:
    application, org_id = services().application, g.org_id

    def lines(after: int) -> Iterator[str]:
        while True:
            items = application.event_history(org_id, after=after, limit=500, **query)
            for item in items:
                yield json.dumps(item) + "\n"
            if len(items) < 500:
                return
            after = items[-1]["position"]

    return Response(
        stream_with_context(lines(query.pop("after"))),
        mimetype="application/x-ndjson",
        headers={"Content-Disposition": "attachment; filename=tenzo-events.ndjson"},
    )
