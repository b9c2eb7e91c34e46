"""Aggregates: API key status and revocation, webhook changes (SPEC 5.2, 8)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from contracts.audit import audit_item, event_type_names
from domain.actors import actor
from domain.api_keys import ApiKey
from domain.credentials import API_KEY_PREFIX, mint
from domain.organizations import AdminToken, Organization
from domain.webhooks import Webhook, webhook_id

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
ADMIN = actor("admin_token", uuid4())


def new_key(expires_at: datetime | None = None) -> ApiKey:
    minted = mint(API_KEY_PREFIX)
    return ApiKey(
        org_id=uuid4(),
        name="ci",
        key_hash=minted.hash,
        key_hint=minted.hint,
        expires_at=expires_at,
        actor=ADMIN,
    )


def types(events) -> list[str]:
    return [event_type_names(e)[1] for e in events]


def new_webhook(**changes) -> Webhook:
    fields = {"url": "https://hooks.example.com/a", "secret": None, "enabled": False}
    return Webhook(org_id=uuid4(), actor=ADMIN, **(fields | changes))


# -- API keys ------------------------------------------------------------------------


def test_a_new_key_without_expiry_is_active():
    key = new_key()
    assert key.status(NOW) == "active"
    assert key.status(NOW + timedelta(days=3650)) == "active"
    assert types(key.collect_events()) == ["ApiKeyCreated"]


def test_a_key_expires_at_its_expiry():
    key = new_key(expires_at=NOW + timedelta(hours=1))
    assert key.status(NOW) == "active"
    assert key.status(NOW + timedelta(minutes=59, seconds=59)) == "active"
    assert key.status(NOW + timedelta(hours=1)) == "expired"
    assert key.status(NOW + timedelta(days=1)) == "expired"


def test_a_revoked_key_is_revoked_for_good_and_revoking_twice_records_one_event():
    key = new_key(expires_at=NOW + timedelta(hours=1))
    key.collect_events()
    key.revoke(now=NOW, actor=ADMIN)
    key.revoke(now=NOW + timedelta(minutes=5), actor=ADMIN)
    events = key.collect_events()
    assert types(events) == ["ApiKeyRevoked"]
    assert events[0].actor == ADMIN
    assert key.revoked_at == NOW
    assert key.status(NOW) == "revoked"
    # Revoked wins over expired: the key can never come back.
    assert key.status(NOW + timedelta(days=1)) == "revoked"


def test_the_key_hash_is_redacted_in_the_audit_item():
    key = new_key()
    (created,) = key.collect_events()
    item = audit_item(created, position=7)
    assert item["type"] == "ApiKeyCreated"
    assert item["aggregate_type"] == "ApiKey"
    assert item["aggregate_id"] == str(key.id)
    assert item["position"] == 7 and item["version"] == 1
    assert item["actor"] == ADMIN
    assert item["data"]["key_hash"] == "[redacted]"
    assert key.key_hash not in repr(item)


# -- organizations -------------------------------------------------------------------


def test_an_organization_and_its_admin_token():
    organization = Organization(name="Acme", actor=actor("operator"))
    minted = mint("tenzo_admin_")
    token = AdminToken(
        org_id=organization.id,
        token_hash=minted.hash,
        token_hint=minted.hint,
        actor=actor("operator"),
    )
    assert types(organization.collect_events()) == ["OrganizationCreated"]
    token.revoke(actor=ADMIN)
    assert token.revoked
    events = token.collect_events()
    assert types(events) == ["AdminTokenIssued", "AdminTokenRevoked"]
    assert audit_item(events[0], 1)["data"]["token_hash"] == "[redacted]"


# -- webhook -------------------------------------------------------------------------


def test_a_webhook_is_stored_under_an_id_derived_from_its_organization():
    webhook = new_webhook()
    assert webhook.id == webhook_id(webhook.org_id)
    assert webhook_id(webhook.org_id) != webhook_id(uuid4())
    assert types(webhook.collect_events()) == ["WebhookConfigured"]
    assert webhook.enabled is False and webhook.secret_set is False


def test_patch_records_one_event_per_changed_field():
    webhook = new_webhook()
    webhook.collect_events()
    webhook.change(
        actor=ADMIN, url="https://hooks.example.com/b", secret="s3cret-value", enabled=True
    )
    events = webhook.collect_events()
    assert types(events) == ["WebhookUrlChanged", "WebhookSecretChanged", "WebhookEnabled"]
    assert all(event.actor == ADMIN for event in events)
    assert (webhook.url, webhook.secret, webhook.enabled) == (
        "https://hooks.example.com/b",
        "s3cret-value",
        True,
    )
    assert audit_item(events[1], 2)["data"]["secret"] == "[redacted]"

    webhook.change(actor=ADMIN, enabled=False)
    assert types(webhook.collect_events()) == ["WebhookDisabled"]
    webhook.change(actor=ADMIN, remove_secret=True)
    assert types(webhook.collect_events()) == ["WebhookSecretChanged"]
    assert webhook.secret is None and webhook.secret_set is False


def test_patch_with_unchanged_values_records_nothing():
    webhook = new_webhook(secret="s3cret-value", enabled=True)
    webhook.collect_events()
    webhook.change(
        actor=ADMIN, url="https://hooks.example.com/a", secret="s3cret-value", enabled=True
    )
    webhook.change(actor=ADMIN)
    assert webhook.collect_events() == []
    plain = new_webhook()
    plain.collect_events()
    plain.change(actor=ADMIN, remove_secret=True, enabled=False)
    assert plain.collect_events() == []


def test_put_on_an_existing_webhook_records_webhook_replaced():
    webhook = new_webhook(secret="s3cret-value", enabled=True)
    webhook.collect_events()
    webhook.replace(url="https://hooks.example.com/c", secret=None, enabled=False, actor=ADMIN)
    events = webhook.collect_events()
    assert types(events) == ["WebhookReplaced"]
    assert (webhook.url, webhook.secret, webhook.enabled) == (
        "https://hooks.example.com/c",
        None,
        False,
    )


def test_delete_forgets_the_secret_and_disables_and_put_brings_it_back():
    webhook = new_webhook(secret="s3cret-value", enabled=True)
    webhook.collect_events()
    webhook.delete(actor=ADMIN)
    assert types(webhook.collect_events()) == ["WebhookDeleted"]
    assert webhook.deleted and not webhook.enabled and webhook.secret is None
    webhook.replace(url="https://hooks.example.com/d", secret=None, enabled=True, actor=ADMIN)
    assert types(webhook.collect_events()) == ["WebhookReplaced"]
    assert not webhook.deleted and webhook.enabled


def test_a_webhook_configured_again_after_deletion_is_new_from_that_moment():
    webhook = new_webhook(secret="s3cret-value", enabled=True)
    assert webhook.configured_on == webhook.created_on
    webhook.replace(url="https://hooks.example.com/b", secret=None, enabled=True, actor=ADMIN)
    assert webhook.configured_on == webhook.created_on  # replaced, not new
    webhook.delete(actor=ADMIN)
    webhook.replace(url="https://hooks.example.com/c", secret="x", enabled=False, actor=ADMIN)
    assert webhook.configured_on == webhook.modified_on > webhook.created_on
    reconfigured_on = webhook.configured_on
    webhook.change(actor=ADMIN, enabled=True)
    assert webhook.configured_on == reconfigured_on < webhook.modified_on

    events = webhook.collect_events()
    assert types(events) == [
        "WebhookConfigured",
        "WebhookReplaced",
        "WebhookDeleted",
        "WebhookReplaced",
        "WebhookEnabled",
    ]
    assert audit_item(events[3], 4)["data"] == {
        "url": "https://hooks.example.com/c",
        "secret": "[redacted]",
        "enabled": False,
    }
    replayed = None
    for stored in events:
        replayed = stored.mutate(replayed)
    assert isinstance(replayed, Webhook)
    assert replayed.configured_on == reconfigured_on
    assert (replayed.url, replayed.secret, replayed.enabled) == (webhook.url, "x", True)
