"""The history's hash chain as the catalog stores it (docs/audit.md): one chain per
organization, linked once in the follower's batches, the same whichever follower or
batch size links it, and served by the head and export routes."""

from __future__ import annotations

import base64
import json
import os
import threading
from typing import Any
from uuid import UUID

import pytest

from contracts.audit_chain import GENESIS, verify
from domain.actors import OPERATOR
from domain.application import DeveloperTools
from services.infrastructure.catalog_follower import CatalogFollower
from tests.support.applications import application_on, jobs

pytestmark = pytest.mark.timeout(300)
ADMIN = "/admin/v1"


def whole_history(application: DeveloperTools, org_id: UUID) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = application.event_history(org_id, after=items[-1]["position"] if items else 0)
        items += page
        if len(page) < 100:
            return items


def as_lines(items: list[dict[str, Any]]) -> list[str]:
    return [json.dumps(item) for item in items]


def test_concurrent_followers_and_writers_link_one_chain_per_organization(database_url):
    key = base64.b64encode(os.urandom(32)).decode()
    first = application_on(database_url, encryption_key=key)
    second = application_on(database_url, encryption_key=key)
    extra = [
        CatalogFollower(app, app.catalog.tables, app.catalog.position, batch_size=37)  # type: ignore[attr-defined]
        for app in (first, second)
    ]
    try:
        acme, _ = first.create_organization("Acme", OPERATOR)
        globex, _ = second.create_organization("Globex", OPERATOR)

        def write(app: DeveloperTools, org_id: UUID) -> None:
            for _ in range(10):
                app.save(*jobs(org_id, 50, OPERATOR))

        writers = [
            threading.Thread(target=write, args=(app, org.id))
            for app in (first, second)
            for org in (acme, globex)
        ]
        for follower in extra:
            follower.start()
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()

        for org in (acme, globex):
            items = whole_history(first, org.id)
            assert len(items) == 1 + 2 * 500 + 1  # created, the jobs, its admin token
            assert items[0]["previous_hash"] == GENESIS
            verdict = verify(as_lines(items))
            assert verdict.ok, verdict
            assert second.event_history_head(org.id) == (items[-1]["position"], verdict.head_hash)
    finally:
        for follower in extra:
            follower.close()
        first.close()
        second.close()


def test_a_catalog_linked_again_from_the_store_holds_the_identical_chain(database_url):
    application = application_on(database_url)
    try:
        acme, _ = application.create_organization("Acme", OPERATOR)
        globex, _ = application.create_organization("Globex", OPERATOR)
        for org in (acme, globex, acme):
            application.save(*jobs(org.id, 30, OPERATOR))
        before = {org.id: whole_history(application, org.id) for org in (acme, globex)}
        catalog: Any = application.catalog
        catalog.follower.close()
        with catalog.tables.transaction() as cursor:
            for table in ("tenzo_catalog", "tenzo_audit", "tenzo_audit_heads"):
                cursor.execute(f"DELETE FROM {table}")  # noqa: S608 - our tables
            catalog.position.set(cursor, 0)
        again = CatalogFollower(application, catalog.tables, catalog.position, batch_size=7)
        while again.apply_next_batch():
            pass
        again.close()

        for org in (acme, globex):
            assert catalog.events(org.id, after=0, limit=1000) == before[org.id]
    finally:
        application.close()


def test_the_head_and_the_export_carry_the_chain(client, org, other_org):
    empty = client.get(f"{ADMIN}/events/head", headers=org.headers)
    assert empty.status_code == 200
    for name in ("one", "two"):
        client.post(f"{ADMIN}/api-keys", json={"name": name}, headers=org.headers)
        client.post(f"{ADMIN}/api-keys", json={"name": name}, headers=other_org.headers)

    head = client.get(f"{ADMIN}/events/head", headers=org.headers).json
    exported = client.get(f"{ADMIN}/events/export", headers=org.headers).get_data(as_text=True)
    lines = exported.splitlines()

    verdict = verify(lines, head=empty.json["hash"])
    assert verdict.ok, verdict
    assert head == {"position": verdict.head_position, "hash": verdict.head_hash}
    listed = client.get(f"{ADMIN}/events", headers=org.headers).json["items"]
    assert [item["hash"] for item in listed] == [json.loads(line)["hash"] for line in lines]
    assert listed[1]["previous_hash"] == listed[0]["hash"]
    theirs = client.get(f"{ADMIN}/events/head", headers=other_org.headers).json
    assert theirs["hash"] != head["hash"]


def test_the_head_needs_an_admin_token(client):
    assert client.get(f"{ADMIN}/events/head").status_code == 401


def test_a_catalog_made_before_the_chain_is_linked_once_on_start(database_url):
    key = base64.b64encode(os.urandom(32)).decode()
    application = application_on(database_url, encryption_key=key)
    try:
        acme, _ = application.create_organization("Acme", OPERATOR)
        globex, _ = application.create_organization("Globex", OPERATOR)
        application.save(*jobs(acme.id, 5, OPERATOR), *jobs(globex.id, 5, OPERATOR))
        chained = {org.id: whole_history(application, org.id) for org in (acme, globex)}
        catalog: Any = application.catalog
        catalog.follower.close()
        rows = catalog.tables.read("SELECT position, item FROM tenzo_audit")
        with catalog.tables.transaction() as cursor:  # as an earlier version left it
            for row in rows:
                item = json.loads(row["item"])
                del item["hash"], item["previous_hash"]
                cursor.execute(
                    "UPDATE tenzo_audit SET item = :item WHERE position = :position",
                    {"item": json.dumps(item), "position": row["position"]},
                )
            cursor.execute("DELETE FROM tenzo_audit_heads")
    finally:
        application.close()

    restarted = application_on(database_url, encryption_key=key)
    try:
        for org in (acme, globex):
            assert whole_history(restarted, org.id) == chained[org.id]
        restarted.save(*jobs(acme.id, 1, OPERATOR))
        assert verify(as_lines(whole_history(restarted, acme.id))).ok
    finally:
        restarted.close()
