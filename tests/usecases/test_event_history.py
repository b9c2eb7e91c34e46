"""The audit history: every event of an organization, through the catalog, redacted."""

from __future__ import annotations

import json

from tests.support.applications import position

URL = "https://93.184.215.14/webhooks/tenzo"
SECRET = "whsec-never-shown-" + "s" * 16


def types(items):
    return [item["type"] for item in items]


def test_an_organization_sees_its_own_events_oldest_first(application, org, other_org):
    key, plaintext = application.create_api_key(org.id, "ats", None, org.admin)
    application.configure_webhook(org.id, URL, SECRET, True, org.admin)
    application.revoke_api_key(org.id, key.id, org.admin)
    application.create_api_key(other_org.id, "theirs", None, other_org.admin)

    history = application.event_history(org.id)

    assert types(history) == [
        "OrganizationCreated",
        "AdminTokenIssued",
        "ApiKeyCreated",
        "WebhookConfigured",
        "ApiKeyRevoked",
    ]
    positions = [item["position"] for item in history]
    assert positions == sorted(positions) and positions[-1] < position(application)
    assert history[2]["actor"] == org.admin and history[0]["actor"]["type"] == "operator"
    text = json.dumps(history)
    assert SECRET not in text and plaintext not in text and key.key_hash not in text
    assert types(application.event_history(other_org.id))[-1] == "ApiKeyCreated"


def test_the_history_pages_and_filters(application, org):
    key, _ = application.create_api_key(org.id, "ats", None, org.admin)
    application.revoke_api_key(org.id, key.id, org.admin)
    everything = application.event_history(org.id)

    first = application.event_history(org.id, limit=2)
    rest = application.event_history(org.id, after=first[-1]["position"])
    assert first + rest == everything
    assert types(application.event_history(org.id, type="ApiKeyRevoked")) == ["ApiKeyRevoked"]
    assert types(application.event_history(org.id, aggregate_id=key.id)) == [
        "ApiKeyCreated",
        "ApiKeyRevoked",
    ]
    assert application.event_history(org.id, after=everything[-1]["position"]) == []


def test_events_recorded_after_a_read_are_shown_on_the_next(application, org):
    application.event_history(org.id)  # caught up
    application.create_api_key(org.id, "late", None, org.admin)

    assert types(application.event_history(org.id))[-1] == "ApiKeyCreated"
