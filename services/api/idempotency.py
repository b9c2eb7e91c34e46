"""Idempotency keys of the Public API's POSTs (SPEC 5.3), kept 24 hours.

A key is scoped to an organization. The first request with a key claims it (an
INSERT that only one request can win, on SQLite and PostgreSQL alike) and runs; its
response is then stored. A later request with the same key and the same request
fingerprint gets that response replayed; with another fingerprint it is refused. A
request that arrives while the first is still running waits for its response, so
two concurrent requests with one key execute once. A claim whose request died
(no response after ``lease_seconds``) may be taken over.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.application import Application

from domain.errors import Conflict, InvalidInput
from services.infrastructure.storage import SqlTables

TTL_SECONDS = 24 * 3600
HEADER = "Idempotency-Key"

CREATE_TABLES = [
    """CREATE TABLE IF NOT EXISTS tenzo_idempotency (
        org_id TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        claimed_at DOUBLE PRECISION NOT NULL,
        status_code INTEGER,
        response_body TEXT,
        PRIMARY KEY (org_id, idempotency_key)
    )""",
    """CREATE INDEX IF NOT EXISTS tenzo_idempotency_by_age
        ON tenzo_idempotency (claimed_at)""",
]


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: str


class IdempotencyStore:
    """Claims, completes and replays idempotency keys."""

    def __init__(
        self,
        app: Application[Any],
        *,
        ttl_seconds: float = TTL_SECONDS,
        wait_seconds: float = 10.0,
        lease_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
    ):
        self.tables = SqlTables(app, CREATE_TABLES)
        self.ttl_seconds = ttl_seconds
        self.wait_seconds = wait_seconds
        self.lease_seconds = lease_seconds
        self.clock = clock
        self._next_purge = 0.0

    def claim(self, org_id: UUID, key: str, fingerprint: str) -> StoredResponse | None:
        """None when this request owns the key and must run (then ``complete`` or
        ``release`` it); else the first request's response, to replay.

        Raises InvalidInput when the key was used with another request, Conflict when
        the first request is still running after ``wait_seconds``.
        """
        self._purge_expired()
        ids = {"org": str(org_id), "key": key}
        deadline = time.monotonic() + self.wait_seconds
        while True:
            now = self.clock()
            with self.tables.transaction() as cursor:
                cursor.execute(
                    "DELETE FROM tenzo_idempotency "
                    "WHERE org_id = :org AND idempotency_key = :key AND claimed_at < :expired",
                    ids | {"expired": now - self.ttl_seconds},
                )
                claimed = cursor.execute(
                    "INSERT INTO tenzo_idempotency (org_id, idempotency_key, fingerprint, "
                    "claimed_at) VALUES (:org, :key, :fingerprint, :now) "
                    "ON CONFLICT (org_id, idempotency_key) DO NOTHING",
                    ids | {"fingerprint": fingerprint, "now": now},
                ).rowcount
            if claimed == 1:
                return None
            with self.tables.transaction(commit=False) as cursor:
                row = cursor.execute(
                    "SELECT fingerprint, claimed_at, status_code, response_body "
                    "FROM tenzo_idempotency WHERE org_id = :org AND idempotency_key = :key",
                    ids,
                ).fetchone()
            if row is None:
                continue  # expired and removed meanwhile: claim again
            if row["fingerprint"] != fingerprint:
                raise InvalidInput(
                    f"This {HEADER} was used with a different request; use a new key.",
                    field=HEADER,
                )
            if row["status_code"] is not None:
                return StoredResponse(int(row["status_code"]), row["response_body"])
            if now - float(row["claimed_at"]) > self.lease_seconds and self._take_over(
                ids, float(row["claimed_at"]), now
            ):
                return None
            if time.monotonic() > deadline:
                raise Conflict(f"A request with this {HEADER} is still being processed.")
            time.sleep(0.02)

    def complete(self, org_id: UUID, key: str, status_code: int, body: str) -> None:
        """Store the response of the request that claimed the key."""
        with self.tables.transaction() as cursor:
            cursor.execute(
                "UPDATE tenzo_idempotency SET status_code = :status, response_body = :body "
                "WHERE org_id = :org AND idempotency_key = :key",
                {"org": str(org_id), "key": key, "status": status_code, "body": body},
            )

    def forget_responses_about(self, org_id: UUID, record_id: UUID) -> None:
        """Drop the stored responses that name a record (an erased candidate's, which
        carry their personal data): a replay of their key runs the request anew."""
        with self.tables.transaction() as cursor:
            cursor.execute(
                "DELETE FROM tenzo_idempotency WHERE org_id = :org AND response_body LIKE :id",
                {"org": str(org_id), "id": f"%{record_id}%"},
            )
        self.tables.scrub()

    def release(self, org_id: UUID, key: str) -> None:
        """Give the key up (the request failed): the next request with it runs anew."""
        with self.tables.transaction() as cursor:
            cursor.execute(
                "DELETE FROM tenzo_idempotency WHERE org_id = :org AND idempotency_key = :key "
                "AND status_code IS NULL",
                {"org": str(org_id), "key": key},
            )

    def _take_over(self, ids: dict[str, str], claimed_at: float, now: float) -> bool:
        with self.tables.transaction() as cursor:
            return (
                cursor.execute(
                    "UPDATE tenzo_idempotency SET claimed_at = :now WHERE org_id = :org "
                    "AND idempotency_key = :key AND claimed_at = :claimed_at "
                    "AND status_code IS NULL",
                    ids | {"now": now, "claimed_at": claimed_at},
                ).rowcount
                == 1
            )

    def _purge_expired(self) -> None:
        """Delete expired keys of every organization, at most once a minute."""
        now = self.clock()
        if now < self._next_purge:
            return
        self._next_purge = now + 60
        with self.tables.transaction() as cursor:
            cursor.execute(
                "DELETE FROM tenzo_idempotency WHERE claimed_at < :expired",
                {"expired": now - self.ttl_seconds},
            )
