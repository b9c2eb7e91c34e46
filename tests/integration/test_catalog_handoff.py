"""The dispatcher's committer hands the catalog the events it has just stored, in their
stored (sealed) form, so the follower applies them without decoding them again: the
history it writes must be exactly what decoding the stored events gives (the hash chain
checked against the event store proves it, item by item), with no personal field in
clear. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime

from domain.actors import DISPATCHER, OPERATOR
from domain.deliveries import Delivery
from services.dispatcher.committer import Committer
from services.infrastructure.audit_store import check_store
from services.infrastructure.personal_data import sealing_encoder

NAME = "Zebulon Quartermaine"
EMAIL = "zebulon.handoff@example.org"


def _body(org_id: uuid.UUID, candidate_id: uuid.UUID, n: int) -> str:
    candidate = {"id": str(candidate_id), "first_name": NAME, "email": EMAIL}
    return json.dumps({"type": "interview.completed", "n": n, "data": {"candidate": candidate}})


def test_the_history_of_handed_over_events_is_what_decoding_them_gives(application):
    org, _ = application.create_organization("Handoff", by=OPERATOR)
    job, _ = application.upsert_job(org.id, {"title": "Welder"}, by=OPERATOR)
    first, last = NAME.split()
    candidate, _ = application.upsert_candidate(
        org.id,
        {"job_id": job.id, "first_name": first, "last_name": last, "email": EMAIL},
        by=OPERATOR,
    )
    follower = application.catalog.follower
    committer = Committer(application)
    try:
        deliveries = [
            Delivery(
                org_id=org.id,
                event_id=f"evt-{n}",
                event_type="interview.completed",
                url="https://hooks.example.com/a",
                body=_body(org.id, candidate.id, n),
                actor=DISPATCHER,
            )
            for n in range(4)
        ]
        committer.save(*deliveries[:2])  # one save of two aggregates
        committer.save(*deliveries[2:])
        for n, delivery in enumerate(deliveries):
            delivery.record_attempt(
                datetime.now(UTC),
                200 if n % 2 else 503,
                12,
                None if n % 2 else "HTTP 503",
                "ok" if n % 2 else "busy",
                DISPATCHER,
                cause=None if n % 2 else "The endpoint answered 503.",
                request_headers={"content-type": "application/json", "webhook-id": f"evt-{n}"},
                response_headers={"set-cookie": "••••••", "server": "test"},
            )
            if n % 2:
                delivery.succeed(DISPATCHER)
            else:
                delivery.fail("HTTP 503", DISPATCHER)
            committer.save(delivery)
    finally:
        committer.close()

    handed = 4 * 3  # each delivery: Scheduled, Attempted, then Succeeded or Failed
    deadline = time.monotonic() + 20
    while follower.handed_applied < handed and time.monotonic() < deadline:
        follower.wait_for_progress(0.2)
    assert follower.handed_applied == handed

    application.catalog.wait_for_writes(org.id)
    check = check_store(application)
    assert check.mismatches == []
    assert check.checked == check.reached >= handed + 3  # and the org, job and candidate
    stored_items = " ".join(
        row["item"] for row in application.catalog.tables.read("SELECT item FROM tenzo_audit")
    )
    assert "DeliverySucceeded" in stored_items and "DeliveryFailed" in stored_items
    assert NAME not in stored_items and EMAIL not in stored_items


def test_a_handed_over_event_that_another_writer_stored_first_is_decoded(application):
    """Handed over before it is committed, an event whose version another writer stored
    first (a conflict: ours is never stored) must not stand in for the stored one."""
    org, _ = application.create_organization("Conflict", by=OPERATOR)
    application.catalog.wait_for_writes(org.id)
    follower = application.catalog.follower
    before = follower.handed_applied

    def delivery(url: str) -> Delivery:
        return Delivery(
            org_id=org.id,
            event_id="evt-same",
            event_type="interview.completed",
            url=url,
            body="{}",
            actor=DISPATCHER,
        )

    ours = delivery("https://ours.example.com/hook")
    follower.hand_over([sealing_encoder(application)(e) for e in ours.collect_events()])
    application.save(delivery("https://theirs.example.com/hook"))  # stored first

    application.catalog.wait_for_writes(org.id)
    assert follower.handed_applied == before
    assert check_store(application).mismatches == []
    items = " ".join(
        row["item"] for row in application.catalog.tables.read("SELECT item FROM tenzo_audit")
    )
    assert "theirs.example.com" in items and "ours.example.com" not in items
