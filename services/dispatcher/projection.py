"""The dispatcher's projection: current webhook configuration, jobs and candidates.

Fed by the relayed domain events (queue ``tenzo.dispatcher.projection``). A relayed
event is redacted (no secret ever travels on the broker), so for a Webhook, Job or
Candidate event the projection reads that aggregate from the event store *at the
event's version* and stores its state with that version. A row is only ever replaced
by a higher version, so an event delivered twice, late or out of order is applied at
most once and never moves a row back. Secrets are stored encrypted with the event
store's own cipher (AES-GCM with TENZO_ENCRYPTION_KEY) and decrypted when sending.
While a rotated secret's overlap lasts (SPEC 9), the row also holds the previous secret
(encrypted alike) and when it stops signing; ``PreviousSecretForgotten`` (or any later
change of the secret) empties both.

The position (the highest notification position seen, ``tenzo_dispatch_position``:
services/infrastructure/positions.py) is kept for the lag gauges and for knowing
whether the projection has ever been filled.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from domain.application import DeveloperTools
from domain.webhooks import Webhook, webhook_id
from services.dispatcher import metrics
from services.dispatcher.rebuild import ProjectionRebuild, RecentAggregates
from services.infrastructure.personal_data import KeyDestroyed, PersonalDataKeys
from services.infrastructure.positions import DISPATCH_TABLE, Position
from services.infrastructure.storage import SqlCursor, SqlTables

log = logging.getLogger("tenzo.projection")

POSITION_NAME = "dispatcher"
PROJECTED_TYPES = ("Webhook", "Job", "Candidate")
PERSONAL_COLUMNS = ("first_name", "last_name", "email")

CREATE_TABLES = [
    """CREATE TABLE IF NOT EXISTS tenzo_dispatch_webhooks (
        webhook_id TEXT PRIMARY KEY,
        org_id TEXT NOT NULL,
        version BIGINT NOT NULL,
        url TEXT NOT NULL,
        enabled INTEGER NOT NULL,
        secret TEXT,
        previous_secret TEXT,
        previous_secret_expires_at TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS tenzo_dispatch_jobs (
        job_id TEXT PRIMARY KEY,
        org_id TEXT NOT NULL,
        version BIGINT NOT NULL,
        external_id TEXT,
        title TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS tenzo_dispatch_candidates (
        candidate_id TEXT PRIMARY KEY,
        org_id TEXT NOT NULL,
        version BIGINT NOT NULL,
        external_id TEXT,
        first_name TEXT,
        last_name TEXT,
        email TEXT
    )""",
]

# Added after the table's first version: added to tables made before.
ADDED_WEBHOOK_COLUMNS = {"previous_secret": "TEXT", "previous_secret_expires_at": "TEXT"}

# Each projected type's table and columns (its key first, then the organization's id),
# in the order of the rows ``DispatchProjection.row`` makes (the key as "key").
_COLUMNS = {
    "Webhook": (
        "tenzo_dispatch_webhooks",
        (
            "webhook_id",
            "org_id",
            "version",
            "url",
            "enabled",
            "secret",
            "previous_secret",
            "previous_secret_expires_at",
        ),
    ),
    "Job": ("tenzo_dispatch_jobs", ("job_id", "org_id", "version", "external_id", "title")),
    "Candidate": (
        "tenzo_dispatch_candidates",
        ("candidate_id", "org_id", "version", "external_id", "first_name", "last_name", "email"),
    ),
}


def _only_if_newer(table: str, columns: tuple[str, ...]) -> str:
    """A row is only ever replaced by a higher version (its organization never changes)."""
    assignments = ", ".join(f"{name} = excluded.{name}" for name in columns[2:])
    return (
        f"ON CONFLICT ({columns[0]}) DO UPDATE SET {assignments} "
        f"WHERE {table}.version < excluded.version"
    )


_ON_CONFLICT = {
    kind: _only_if_newer(*table_and_columns) for kind, table_and_columns in _COLUMNS.items()
}
_VERSION_OF = {
    "Webhook": "SELECT version FROM tenzo_dispatch_webhooks WHERE webhook_id = :key",
    "Job": "SELECT version FROM tenzo_dispatch_jobs WHERE job_id = :key",
    "Candidate": "SELECT version FROM tenzo_dispatch_candidates WHERE candidate_id = :key",
}


# What new interview deliveries need, for many messages in one query: the wanted rows
# (index, webhook, candidate, job, delivery, and the aggregate ids whose
# latest stored version is compared with the projected one) arrive as one JSON array,
# so the statement's text is the same for any batch (parsed and prepared once). Ids
# travel as hex, as SQLite stores them; PostgreSQL reads hex as uuid. Each look-up in
# the event store is one index probe: keep it so. (A filter on the topic made the
# planner's estimate cross PostgreSQL's JIT threshold: 60 ms of compiling per query.)
_WANTED = {
    "postgres": "SELECT * FROM jsonb_to_recordset(CAST(:wanted AS jsonb)) AS x("
    "i int, webhook text, candidate text, job text, delivery uuid, "
    "webhook_uuid uuid, candidate_uuid uuid, job_uuid uuid)",
    "sqlite": "SELECT json_extract(value, '$.i') AS i, "
    "json_extract(value, '$.webhook') AS webhook, "
    "json_extract(value, '$.candidate') AS candidate, json_extract(value, '$.job') AS job, "
    "json_extract(value, '$.delivery') AS delivery, "
    "json_extract(value, '$.webhook_uuid') AS webhook_uuid, "
    "json_extract(value, '$.candidate_uuid') AS candidate_uuid, "
    "json_extract(value, '$.job_uuid') AS job_uuid "
    "FROM json_each(:wanted)",
}
_INTERVIEW_CONTEXTS = (
    "WITH wanted AS ({wanted}) "
    "SELECT wanted.i, wanted.candidate, w.version AS w_version, w.url, w.enabled, w.secret, "
    "w.previous_secret, w.previous_secret_expires_at, "
    "c.org_id AS c_org_id, c.version AS c_version, c.external_id AS c_external_id, "
    "c.first_name, c.last_name, c.email, k.sealed_key AS c_sealed_key, "
    "j.org_id AS j_org_id, j.version AS j_version, j.external_id AS j_external_id, j.title, "
    "(SELECT 1 FROM {events} WHERE originator_id = wanted.delivery LIMIT 1) AS delivered, "
    "(SELECT max(originator_version) FROM {events} "
    "WHERE originator_id = wanted.webhook_uuid) AS w_stored, "
    "(SELECT max(originator_version) FROM {events} "
    "WHERE originator_id = wanted.candidate_uuid) AS c_stored, "
    "(SELECT max(originator_version) FROM {events} "
    "WHERE originator_id = wanted.job_uuid) AS j_stored "
    "FROM wanted "
    "LEFT JOIN tenzo_dispatch_webhooks w ON w.webhook_id = wanted.webhook "
    "LEFT JOIN tenzo_dispatch_candidates c ON c.candidate_id = wanted.candidate "
    "LEFT JOIN tenzo_personal_keys k ON k.subject = wanted.candidate "
    "LEFT JOIN tenzo_dispatch_jobs j ON j.job_id = wanted.job"
)


@dataclass(frozen=True)
class InterviewRef:
    """The ids one interview message names, and the delivery it would create."""

    org_id: UUID
    candidate_id: str
    job_id: str
    delivery_id: UUID


@dataclass(frozen=True)
class WebhookTarget:
    """Where and how an organization's deliveries go, as the projection knows it now."""

    url: str
    enabled: bool
    secret: str | None
    previous_secret: str | None = None
    previous_secret_expires_at: datetime | None = None

    def previous_secret_at(self, now: datetime) -> str | None:
        """The previous secret when an attempt made at ``now`` is signed with it too:
        only before its expiry, whether or not its forgetting is recorded yet."""
        expires = self.previous_secret_expires_at
        if self.previous_secret is None or expires is None or now >= expires:
            return None
        return self.previous_secret


@dataclass(frozen=True)
class InterviewContext:
    target: WebhookTarget | None
    candidate: dict[str, Any]
    job: dict[str, Any]
    delivered: bool  # the delivery exists in the event store: a duplicate message


class DispatchProjection:
    """Reads and writes the dispatcher's tables; safe to share between threads."""

    def __init__(self, application: DeveloperTools):
        self.application = application
        self.tables = SqlTables(application, CREATE_TABLES)
        self.tables.add_columns("tenzo_dispatch_webhooks", ADDED_WEBHOOK_COLUMNS)
        self._cipher = application.mapper.cipher
        personal: Any = application.personal_data
        self._personal: PersonalDataKeys = personal
        # The event store's table is named by its recorder (configuration, not input).
        self._interview_contexts_sql = _INTERVIEW_CONTEXTS.replace(
            "{wanted}", _WANTED[self.tables.dialect]
        ).replace("{events}", application.recorder.events_table_name)  # type: ignore[attr-defined]
        self._position = Position(application, DISPATCH_TABLE, POSITION_NAME)
        self._lock = threading.Lock()
        self._unwritten = 0
        self.projected_types = PROJECTED_TYPES

    # -- applying relayed events ---------------------------------------------------------

    def apply(self, item: dict[str, Any]) -> bool:
        """Apply one relayed audit item; return whether it changed a row.

        Items of other aggregates only advance the position.
        """
        aggregate_type = item.get("aggregate_type")
        position = int(item["position"])
        if aggregate_type not in PROJECTED_TYPES:  # other events, the relay's markers
            self._note(position)
            return False
        key, version = str(item["aggregate_id"]), int(item["version"])
        if self._stored_version(aggregate_type, key) >= version:
            self._note(position)
            return False  # already applied (or a newer state is)
        aggregate: Any = self.application.repository.get(UUID(key), version=version)
        with self.tables.transaction() as cursor:
            self.write_rows(cursor, aggregate_type, [self.row(aggregate_type, aggregate, version)])
            self._position.advance(cursor, position)
        return True

    def _note(self, position: int) -> None:
        # Events that change nothing only move the position; it is written in batches
        # (flush_position) rather than once per event.
        with self._lock:
            self._unwritten = max(self._unwritten, position)

    def flush_position(self) -> None:
        """Write the highest position seen by events that changed nothing."""
        with self._lock:
            position, self._unwritten = self._unwritten, 0
        if position:
            with self.tables.transaction() as cursor:
                self._position.advance(cursor, position)

    def _stored_version(self, aggregate_type: str, key: str) -> int:
        rows = self.tables.read(_VERSION_OF[aggregate_type], {"key": key})
        return int(rows[0]["version"]) if rows else 0

    def rows(self, aggregate_type: str, aggregates: list[Any]) -> list[dict[str, Any]]:
        """The rows of these aggregates at their versions; candidates' personal fields
        sealed with their keys read in one query for all of them."""
        if aggregate_type == "Candidate":
            self._personal.read_for_sealing(str(aggregate.id) for aggregate in aggregates)
        return [self.row(aggregate_type, aggregate, aggregate.version) for aggregate in aggregates]

    def row(self, aggregate_type: str, aggregate: Any, version: int) -> dict[str, Any]:
        """The row that stores this aggregate's state at ``version``."""
        if aggregate_type == "Webhook":
            webhook: Webhook = aggregate
            enabled = webhook.enabled and not webhook.deleted
            expires = webhook.previous_secret_expires_at
            previous = webhook.previous_secret if expires is not None else None
            return {
                "key": str(webhook.id),
                "org_id": str(webhook.org_id),
                "version": version,
                "url": webhook.url,
                "enabled": 1 if enabled else 0,
                "secret": self._encrypt(webhook.secret) if not webhook.deleted else None,
                "previous_secret": self._encrypt(previous),
                "previous_secret_expires_at": (
                    expires.astimezone(UTC).isoformat()
                    if previous is not None and expires
                    else None
                ),
            }
        row = {
            "key": str(aggregate.id),
            "org_id": str(aggregate.org_id),
            "version": version,
            "external_id": getattr(aggregate, "external_id", None),
        }
        if aggregate_type == "Job":
            return row | {"title": getattr(aggregate, "title", None)}
        # Personal fields are kept sealed under the candidate's key (personal_data.py):
        # once it is erased they are unreadable here too, rebuilt or not.
        return row | {
            name: self._seal(str(aggregate.id), name, getattr(aggregate, name, None))
            for name in PERSONAL_COLUMNS
        }

    def _seal(self, subject: str, field: str, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return self._personal.seal(subject, field, value)
        except KeyDestroyed:
            return None

    def _encrypt(self, secret: str | None) -> str | None:
        if secret is None:
            return None
        if self._cipher is None:  # never: the event store is always encrypted
            raise RuntimeError("secrets are kept only in an encrypted event store")
        return base64.b64encode(self._cipher.encrypt(secret.encode("utf-8"))).decode("ascii")

    def _decrypt(self, stored: str | None) -> str | None:
        if stored is None:
            return None
        return _decrypted(self._cipher, stored)

    # -- rebuilding --------------------------------------------------------------------

    def rebuild(
        self,
        progress: Callable[[int], None] | None = None,
        restart: bool = False,
        recent: RecentAggregates | None = None,
        waiting: Callable[[], None] | None = None,
    ) -> int:
        """Fill the tables from the event store, in constant memory; return the position
        reached (the log's newest when the rebuild started).

        Streams the notification log in batches (services/dispatcher/rebuild.py) and
        resumes a rebuild that was interrupted, unless ``restart``. ``progress(n)`` is
        called with the number of events each batch read. ``recent`` bounds the
        aggregates kept between batches. Safe to run beside a live dispatcher: rows
        only move to higher versions, the position only forward. Waits for another
        rebuild under way to end first (calling ``waiting()`` then)."""
        return ProjectionRebuild(self, recent).run(progress, restart=restart, waiting=waiting)

    def rebuild_if_needed(self) -> int | None:
        """Rebuild (or finish an interrupted rebuild) if ``needs_rebuild``, unless another
        process is rebuilding: it fills the tables, and reads project a missing row on
        the spot meanwhile. The position reached, or None when nothing was done."""
        if not self.needs_rebuild():
            return None
        return ProjectionRebuild(self).run_if_needed(self.needs_rebuild)

    def needs_rebuild(self) -> bool:
        """Whether the projection was never filled from a non-empty store, or a
        rebuild was interrupted."""
        if ProjectionRebuild(self).unfinished():
            return True
        return self.position() == 0 and bool(self.application.recorder.max_notification_id())

    def write_rows(
        self, cursor: SqlCursor, aggregate_type: str, rows: list[dict[str, Any]]
    ) -> None:
        """Upsert many rows of one aggregate type (each only over a lower version), in
        one statement; each aggregate at most once."""
        table, columns = _COLUMNS[aggregate_type]
        values = [(row["key"], *(row[name] for name in columns[1:])) for row in rows]
        values.sort(key=lambda value: value[0])  # in key order: concurrent writers lock alike
        cursor.upsert_rows(table, columns, values, _ON_CONFLICT[aggregate_type])

    def advance_position(self, cursor: SqlCursor, position: int) -> None:
        """Save the projection's position if it is higher (the end of a rebuild: a live
        dispatcher may have seen later events meanwhile)."""
        self._position.advance(cursor, position)

    # -- queries -----------------------------------------------------------------------

    def position(self) -> int:
        """The highest notification position applied or written (flush_position)."""
        return self._position.read()

    def webhook(self, org_id: UUID) -> WebhookTarget | None:
        """The organization's webhook as it is now (before a retry, a redelivery, a test).

        Read your writes, as for interview messages: a webhook changed (disabled, say)
        moments ago, whose relayed event has not reached the projection yet, is read
        from the event store and projected first."""
        key = webhook_id(org_id)
        row = self._webhook_row(key)
        latest = self.application.recorder.select_events(key, desc=True, limit=1)
        if latest and latest[0].originator_version > (row["version"] if row else 0):
            self.catch_up("Webhook", key)
            row = self._webhook_row(key)
        if row is None:
            return None
        return self._target(row)

    def _target(self, row: Any) -> WebhookTarget:
        expires = row["previous_secret_expires_at"]
        return WebhookTarget(
            url=row["url"],
            enabled=bool(row["enabled"]),
            secret=self._decrypt(row["secret"]),
            previous_secret=self._decrypt(row["previous_secret"]),
            previous_secret_expires_at=datetime.fromisoformat(expires) if expires else None,
        )

    def _webhook_row(self, key: UUID) -> Any:
        rows = self.tables.read(
            "SELECT version, url, enabled, secret, previous_secret, previous_secret_expires_at "
            "FROM tenzo_dispatch_webhooks WHERE webhook_id = :id",
            {"id": str(key)},
        )
        return rows[0] if rows else None

    def organizations_with_expired_previous_secrets(self, now: datetime) -> list[UUID]:
        """The organizations whose previous secret's overlap has ended by ``now`` and
        whose forgetting the projection has not heard of yet (few rows: only webhooks
        inside or just past an overlap hold one)."""
        rows = self.tables.read(
            "SELECT org_id, previous_secret_expires_at FROM tenzo_dispatch_webhooks "
            "WHERE previous_secret_expires_at IS NOT NULL"
        )
        return [
            UUID(row["org_id"])
            for row in rows
            if datetime.fromisoformat(row["previous_secret_expires_at"]) <= now
        ]

    def interview_contexts(self, refs: list[InterviewRef]) -> list[InterviewContext]:
        """What new interview deliveries need, in one query for all of them: each
        organization's webhook, the candidate's and the job's payload objects (only
        their ids when unknown to that organization; the candidate's personal fields
        opened with its key as the same query reads it, none once erased), and whether
        the event store has the delivery already (a duplicate message). In the order of
        ``refs``.

        Read your writes: the same query compares each projected row's version with the
        event store's latest. A webhook, candidate or job changed moments ago, whose
        relayed event has not reached the projection yet, is read from the event store
        and projected now, so a message published right after a change sees it."""
        if not refs:
            return []
        wanted = [_wanted_row(i, ref) for i, ref in enumerate(refs)]
        params = {"wanted": json.dumps(wanted)}
        rows = self.tables.read(self._interview_contexts_sql, params)
        behind = {aggregate for row in rows for aggregate in _behind(row, wanted[row["i"]])}
        if behind:
            for aggregate_type, aggregate_id in behind:
                self.catch_up(aggregate_type, aggregate_id)
            rows = self.tables.read(self._interview_contexts_sql, params)
        found = {row["i"]: row for row in rows}
        tokens = [row[name] for row in rows for name in PERSONAL_COLUMNS if row[name]]
        keys = {row["candidate"]: row["c_sealed_key"] for row in rows}  # as read just now
        opened = self._personal.open_with(tokens, keys) if tokens else {}
        return [self._context(ref, found[i], opened) for i, ref in enumerate(refs)]

    def catch_up(self, aggregate_type: str, aggregate_id: UUID) -> None:
        """Project an aggregate at its latest stored version (the relayed event that
        says so may still be on its way; applying it later changes nothing). An id of
        another kind (a job's id given as a candidate's) is left alone."""
        aggregate: Any = self.application.repository.get(aggregate_id)
        if type(aggregate).__name__ != aggregate_type:
            return
        row = self.row(aggregate_type, aggregate, aggregate.version)
        with self.tables.transaction() as cursor:
            self.write_rows(cursor, aggregate_type, [row])

    def _context(
        self, ref: InterviewRef, row: Any, opened: dict[str, str | None]
    ) -> InterviewContext:
        target = self._target(row) if row["url"] is not None else None
        org = str(ref.org_id)
        candidate: dict[str, Any] = {"id": ref.candidate_id}
        if row["c_org_id"] == org:
            candidate["external_id"] = row["c_external_id"]
            tokens = [row[name] for name in PERSONAL_COLUMNS if row[name] is not None]
            if tokens and all(opened.get(token) is not None for token in tokens):
                candidate |= {name: opened.get(row[name]) for name in PERSONAL_COLUMNS}
            # else erased: a delivery about the candidate carries only ids
        job: dict[str, Any] = {"id": ref.job_id}
        if row["j_org_id"] == org:
            job |= {"external_id": row["j_external_id"], "title": row["title"]}
        return InterviewContext(target, candidate, job, delivered=row["delivered"] is not None)

    def measure_lag(self) -> tuple[int, float]:
        """(events, seconds) the projection is behind the event store; sets the gauges."""
        seen = self.position()
        newest = self.application.recorder.max_notification_id() or 0
        behind = max(0, newest - seen)
        seconds = 0.0
        if behind:
            oldest: Iterable[Any] = self.application.recorder.select_notifications(
                start=seen + 1, limit=1
            )
            for notification in oldest:
                event: Any = self.application.mapper.to_domain_event(notification)
                seconds = max(0.0, (datetime.now(UTC) - event.timestamp).total_seconds())
        metrics.PROJECTION_LAG_EVENTS.set(behind)
        metrics.PROJECTION_LAG_SECONDS.set(seconds)
        return behind, seconds


def _wanted_row(i: int, ref: InterviewRef) -> dict[str, Any]:
    webhook = webhook_id(ref.org_id)
    candidate, job = _uuid(ref.candidate_id), _uuid(ref.job_id)
    return {
        "i": i,
        "webhook": str(webhook),
        "candidate": ref.candidate_id,
        "job": ref.job_id,
        "delivery": ref.delivery_id.hex,
        "webhook_uuid": webhook.hex,
        "candidate_uuid": candidate.hex if candidate else None,
        "job_uuid": job.hex if job else None,
    }


def _uuid(value: str) -> UUID | None:
    """The aggregate id a message names, if it is one (the projection's key form)."""
    try:
        parsed = UUID(value)
    except ValueError:
        return None
    return parsed if str(parsed) == value else None


def _behind(row: Any, wanted: dict[str, Any]) -> Iterable[tuple[str, UUID]]:
    """The aggregates this row shows older in the projection than in the event store."""
    for aggregate_type, prefix in (("Webhook", "w"), ("Candidate", "c"), ("Job", "j")):
        stored = row[f"{prefix}_stored"]  # None when the id is none of the store's
        if stored is not None and stored > (row[f"{prefix}_version"] or 0):
            yield aggregate_type, UUID(hex=wanted[f"{aggregate_type.lower()}_uuid"])


@functools.lru_cache(maxsize=4096)
def _decrypted(cipher: Any, stored: str) -> str:
    """A stored secret in plain text; each stored value is decrypted once (every
    delivery of an organization reads the same one)."""
    return str(cipher.decrypt(base64.b64decode(stored)).decode("utf-8"))
