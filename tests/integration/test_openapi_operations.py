"""SPEC 13: every OpenAPI operation has a stable snake_case operationId and a tag."""

from __future__ import annotations

import re

# Generated clients name their functions after these: renaming one breaks clients.
OPERATION_IDS = {
    ("post", "/admin/v1/organizations"): "create_organization",
    ("post", "/admin/v1/api-keys"): "create_api_key",
    ("get", "/admin/v1/api-keys"): "list_api_keys",
    ("get", "/admin/v1/api-keys/{key_id}"): "get_api_key",
    ("post", "/admin/v1/api-keys/{key_id}/revoke"): "revoke_api_key",
    ("patch", "/admin/v1/api-keys/{key_id}"): "rename_api_key",
    ("post", "/admin/v1/api-keys/{key_id}/roll"): "roll_api_key",
    ("get", "/admin/v1/admin-tokens"): "list_admin_tokens",
    ("post", "/admin/v1/admin-tokens"): "issue_admin_token",
    ("post", "/admin/v1/admin-tokens/{token_id}/revoke"): "revoke_admin_token",
    ("post", "/admin/v1/organizations/{org_id}/admin-tokens"): "issue_organization_admin_token",
    ("get", "/admin/v1/webhook"): "get_webhook",
    ("put", "/admin/v1/webhook"): "configure_webhook",
    ("patch", "/admin/v1/webhook"): "change_webhook",
    ("delete", "/admin/v1/webhook"): "delete_webhook",
    ("post", "/admin/v1/webhook/secret/rotate"): "rotate_webhook_secret",
    ("post", "/admin/v1/webhook/test"): "send_test_event",
    ("get", "/admin/v1/events"): "list_events",
    ("get", "/admin/v1/events/export"): "export_events",
    ("get", "/admin/v1/events/head"): "get_events_head",
    ("get", "/admin/v1/deliveries"): "list_deliveries",
    ("get", "/admin/v1/deliveries/{id}"): "get_delivery",
    ("post", "/admin/v1/deliveries/{id}/redeliver"): "redeliver",
    ("post", "/admin/v1/deliveries/recover"): "recover_deliveries",
    ("post", "/v1/jobs"): "create_job",
    ("get", "/v1/jobs"): "list_jobs",
    ("get", "/v1/jobs/{job_id}"): "get_job",
    ("post", "/v1/candidates"): "create_candidate",
    ("get", "/v1/candidates"): "list_candidates",
    ("get", "/v1/candidates/{candidate_id}"): "get_candidate",
    ("delete", "/v1/candidates/{candidate_id}"): "delete_candidate",
    ("post", "/admin/v1/candidates/{candidate_id}/erase"): "erase_candidate",
}
METHODS = {"get", "put", "post", "patch", "delete"}


def _operations(client) -> dict[tuple[str, str], dict]:
    spec = client.get("/openapi.json").json
    return {
        (method, path): operation
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


def test_every_operation_has_its_stable_snake_case_id_and_a_tag(client):
    operations = _operations(client)
    assert {key: op.get("operationId") for key, op in operations.items()} == OPERATION_IDS
    for key, operation in operations.items():
        assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", operation["operationId"]), key
        assert operation.get("tags"), key


def test_operation_ids_are_unique_and_tags_are_declared(client):
    spec = client.get("/openapi.json").json
    ids = [op["operationId"] for op in _operations(client).values()]
    assert len(ids) == len(set(ids))
    declared = {tag["name"] for tag in spec.get("tags", [])}
    used = {tag for op in _operations(client).values() for tag in op["tags"]}
    assert used <= declared
