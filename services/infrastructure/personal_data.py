"""Candidates' personal data, encrypted under a key of each candidate's own, so that
destroying the key erases it everywhere it was written (SPEC 12, docs/audit.md).

``PersonalDataKeys`` keeps one random AES-256 key per candidate (the *subject*) in
``tenzo_personal_keys``, itself encrypted with the event store's cipher
(``TENZO_ENCRYPTION_KEY``). A value is *sealed* with eventsourcing's AES-GCM cipher
under the subject's key into a token ``<base64url(ciphertext)>.<field>.<subject>``; the
ciphertext holds the field and the subject too, checked when opened (a token cannot be
moved to another field or person).
``destroy`` replaces the key with a tombstone: every token of that subject is then
unreadable, to anyone, with any key; sealing for it again is refused.

``SealingMapper`` is the event store's mapper (``MAPPER_TOPIC``): events listed in
``SEALED_FIELDS`` or ``SEALED_BODIES`` are stored with those fields sealed (``None`` or,
for a body, its copy without personal data in place; the tokens in a ``sealed``
mapping); decoding opens them again, or leaves what is in place once the key is
destroyed. ``to_sealed_domain_event`` decodes without opening (the catalog's follower,
the relay and the store check need the tokens, not the values). No plaintext personal
field is ever written to the event store.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from eventsourcing.application import Application
from eventsourcing.persistence import Mapper, StoredEvent
from eventsourcing.utils import Environment

from services.infrastructure.cipher import EventCipher
from services.infrastructure.storage import SqlTables, select_where_in

CREATE_TABLES = [
    """CREATE TABLE IF NOT EXISTS tenzo_personal_keys (
        subject TEXT PRIMARY KEY,
        sealed_key TEXT,
        destroyed_at DOUBLE PRECISION
    )"""
]

# The personal fields of each event that carries them, by the event's class topic:
# a candidate's own, sealed under that candidate's key.
CANDIDATE_FIELDS = ("first_name", "last_name", "email", "phone", "resume_url")
SEALED_FIELDS = {
    "domain.recruiting:Candidate.Created": CANDIDATE_FIELDS,
    "domain.recruiting:Candidate.Updated": CANDIDATE_FIELDS,
}
# Fields holding a webhook body (or any text that carries one) that may name a
# candidate: sealed under that candidate's key, the copy without personal data kept in
# clear. A new event type recording a body (an attempt's request body) is listed here.
SEALED_BODIES = {
    "domain.deliveries:Delivery.Scheduled": ("body",),
}
ERASED = "[erased]"
# The personal fields of a candidate in a webhook body (contracts/webhook_payload.py).
BODY_CANDIDATE_FIELDS = ("first_name", "last_name", "email", "phone", "resume_url")


class KeyDestroyed(Exception):
    """The subject's personal data was erased: nothing more is sealed for it."""


class PersonalDataKeys:
    """Implements domain.ports.PersonalData: the per-candidate keys (see the module)."""

    def __init__(self, app: Application[Any]):
        self.tables = SqlTables(app, CREATE_TABLES)
        cipher = app.mapper.cipher
        if cipher is None:
            raise RuntimeError("personal data is kept only in an encrypted event store")
        self._cipher = cipher
        self._sealing: dict[str, EventCipher] = {}  # keys to seal with (never to open with)
        self._opening: dict[str, EventCipher] = {}  # by the encrypted key as stored
        if isinstance(app.mapper, SealingMapper):
            app.mapper.use_keys(self)

    # -- sealing -------------------------------------------------------------------------

    def seal(self, subject: str, field: str, value: str) -> str:
        """A token of ``value`` under the subject's key (created on first use); raises
        KeyDestroyed once the subject was erased."""
        cipher = self._sealing.get(subject) or self._key_for_sealing(subject)
        sealed = cipher.encrypt(json.dumps([field, subject, value]).encode("utf-8"))
        return f"{base64.urlsafe_b64encode(sealed).decode()}.{field}.{subject}"

    def _key_for_sealing(self, subject: str) -> EventCipher:
        """The subject's key: a new one (one statement: a new candidate's first save),
        or the one stored already (a second statement reads it)."""
        key = os.urandom(32)
        with self.tables.transaction() as cursor:
            cursor.execute(
                "INSERT INTO tenzo_personal_keys (subject, sealed_key) VALUES (:s, :k) "
                "ON CONFLICT (subject) DO NOTHING",
                {"s": subject, "k": self._encrypt_key(key)},
            )
            created = cursor.rowcount == 1
        if not created:
            stored = self._stored_keys([subject]).get(subject)
            if stored is None:
                raise KeyDestroyed(subject)
            key = self._decrypt_key(stored)
        cipher = _cipher(key)
        self._remember_for_sealing(subject, cipher)
        return cipher

    def read_for_sealing(self, subjects: Iterable[str]) -> None:
        """Keep for ``seal`` the stored keys of these subjects that are not kept yet,
        read in one query (a rebuild seals the fields of a thousand candidates a batch:
        one query rather than two statements each; none when opening their fields read
        them already). A subject without a key, or erased, is left to ``seal`` (which
        creates the key, or refuses)."""
        wanted = sorted({subject for subject in subjects if subject not in self._sealing})
        if wanted:
            self._keys_read(self._stored_keys(wanted))

    def _remember_for_sealing(self, subject: str, cipher: EventCipher) -> None:
        if len(self._sealing) > 10_000:
            self._sealing.clear()
        self._sealing[subject] = cipher

    # -- opening -------------------------------------------------------------------------

    def open_many(self, tokens: Iterable[str]) -> dict[str, str | None]:
        """Each token's value, or None when its subject's key is destroyed (or the token
        is not one of ours). One query for all the subjects, never a key remembered
        for opening without it: an erasure in another process is seen at once. The
        keys read are kept for sealing (a rebuild then seals a candidate's fields again
        without reading its key a second time)."""
        parsed = {token: _parse(token) for token in set(tokens)}
        subjects = {p[2] for p in parsed.values() if p is not None}
        return self._open(parsed, self._stored_keys(sorted(subjects)) if subjects else {})

    def open_with(
        self, tokens: Iterable[str], stored: Mapping[str, str | None]
    ) -> dict[str, str | None]:
        """As ``open_many``, with the subjects' keys as the caller has just read them
        from ``tenzo_personal_keys`` (``sealed_key`` by ``subject``, in a query of its
        own): a subject missing there opens nothing. The keys read are kept for sealing
        too (a delivery about the candidate then seals its body without reading the
        key again)."""
        return self._open({token: _parse(token) for token in set(tokens)}, stored)

    def _open(
        self, parsed: dict[str, tuple[bytes, str, str] | None], stored: Mapping[str, str | None]
    ) -> dict[str, str | None]:
        keys = self._keys_read(stored)
        opened: dict[str, str | None] = {}
        for token, parts in parsed.items():
            opened[token] = None
            if parts is not None and parts[2] in keys:
                blob, field, subject = parts
                try:
                    named, owner, value = json.loads(keys[subject].decrypt(blob))
                except Exception:  # noqa: BLE001, S112 - not ours, or damaged: unreadable
                    continue
                if (named, owner) == (field, subject) and isinstance(value, str):
                    opened[token] = value
        return opened

    def _keys_read(self, stored: Mapping[str, str | None]) -> dict[str, EventCipher]:
        """The ciphers of the keys just read (``sealed_key`` by ``subject``; NULL once
        erased), each kept for sealing too."""
        keys = {s: self._key_for_opening(k) for s, k in stored.items() if k is not None}
        for subject, cipher in keys.items():
            if subject not in self._sealing:
                self._remember_for_sealing(subject, cipher)
        return keys

    def _key_for_opening(self, stored: str) -> EventCipher:
        """The cipher of a key as stored (encrypted) in the table just now: kept by that
        text, so each key is decrypted once, while every opening still reads the table
        (a destroyed key is read as NULL and opens nothing)."""
        cipher = self._opening.get(stored)
        if cipher is None:
            if len(self._opening) > 10_000:
                self._opening.clear()
            cipher = self._opening[stored] = _cipher(self._decrypt_key(stored))
        return cipher

    # -- erasure -------------------------------------------------------------------------

    def destroy(self, subject: str) -> None:
        """Destroy the subject's key (a tombstone stays: nothing is sealed for it again).
        On SQLite the freed bytes are overwritten and the write-ahead log emptied, so
        the encrypted key is not left in the file either."""
        self._sealing.pop(subject, None)
        with self.tables.transaction() as cursor:
            cursor.execute(
                "INSERT INTO tenzo_personal_keys (subject, sealed_key, destroyed_at) "
                "VALUES (:s, NULL, :t) ON CONFLICT (subject) DO UPDATE "
                "SET sealed_key = NULL, destroyed_at = excluded.destroyed_at",
                {"s": subject, "t": time.time()},
            )
        self.tables.scrub()

    # -- the keys table ------------------------------------------------------------------

    def _stored_keys(self, subjects: list[str]) -> dict[str, str | None]:
        rows = select_where_in(
            self.tables.read,
            self.tables.dialect,
            "SELECT subject, sealed_key FROM tenzo_personal_keys WHERE {match}",
            "subject",
            subjects,
        )
        return {row["subject"]: row["sealed_key"] for row in rows}

    def _encrypt_key(self, key: bytes) -> str:
        return base64.b64encode(self._cipher.encrypt(key)).decode("ascii")

    def _decrypt_key(self, stored: str) -> bytes:
        key: bytes = self._cipher.decrypt(base64.b64decode(stored))
        return key


def _cipher(key: bytes) -> EventCipher:
    return EventCipher(Environment(env={"CIPHER_KEY": base64.b64encode(key).decode()}))


def _parse(token: str) -> tuple[bytes, str, str] | None:
    try:
        blob, field, subject = token.split(".", 2)
        return base64.urlsafe_b64decode(blob), field, subject
    except (ValueError, TypeError):
        return None


def without_personal_data(body: str) -> tuple[str, str] | None:
    """(the body with its candidate's personal fields left out, ids only; the
    candidate's id), or None when it names no candidate with personal fields (nothing
    to seal)."""
    try:
        payload = json.loads(body)
        candidate = payload["data"]["candidate"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(candidate, dict) or not any(k in candidate for k in BODY_CANDIDATE_FIELDS):
        return None
    subject = candidate.get("id")
    if not isinstance(subject, str) or not subject:
        return None
    payload["data"]["candidate"] = {
        k: v for k, v in candidate.items() if k not in BODY_CANDIDATE_FIELDS
    }
    return json.dumps(payload, separators=(",", ":")), subject


class SealingMapper(Mapper[Any]):
    """eventsourcing's mapper, sealing the personal fields of ``SEALED_FIELDS`` events."""

    keys: PersonalDataKeys | None = None

    def use_keys(self, keys: PersonalDataKeys) -> None:
        """Given once by PersonalDataKeys: the library builds the mapper before the
        datastore the keys live in."""
        self.keys = keys

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        return super().to_stored_event(self.sealed_form(domain_event))

    def sealed_form(self, domain_event: Any) -> Any:
        """The event as it is stored: its personal fields sealed (a copy), or the event
        itself when it has none. ``to_sealed_domain_event`` of the stored event reads
        back the same (the catalog's follower takes it from a writer of its process
        instead of decoding the stored event again)."""
        topic = _topic(domain_event)
        fields, bodies = SEALED_FIELDS.get(topic), SEALED_BODIES.get(topic)
        if (fields is None and bodies is None) or self.keys is None:
            return domain_event
        state = dict(vars(domain_event))
        sealed = self._seal(state, fields) if fields else self._seal_bodies(state, bodies or ())
        if not sealed and state == vars(domain_event):
            return domain_event  # nothing personal in it
        copy = object.__new__(type(domain_event))
        object.__setattr__(copy, "__dict__", state | ({"sealed": sealed} if sealed else {}))
        return copy

    def _seal_bodies(self, state: dict[str, Any], fields: tuple[str, ...]) -> dict[str, str]:
        """Webhook bodies naming a candidate: sealed under that candidate's key, the
        copy without their personal fields kept in clear in their place."""
        assert self.keys is not None
        sealed = {}
        for field in fields:
            body = state.get(field)
            if not isinstance(body, str):
                continue
            redacted = without_personal_data(body)
            if redacted is None:
                continue
            state[field], subject = redacted
            try:
                sealed[field] = self.keys.seal(subject, field, body)
            except KeyDestroyed:  # erased while this delivery was prepared: ids only
                continue
        return sealed

    def _seal(self, state: dict[str, Any], fields: tuple[str, ...]) -> dict[str, str]:
        """A candidate's own fields, under the candidate's key."""
        assert self.keys is not None
        subject = str(state["originator_id"])
        sealed = {}
        for field in fields:
            value = state.get(field)
            if isinstance(value, str):
                sealed[field] = self.keys.seal(subject, field, value)
                state[field] = None
        return sealed

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        return self.to_domain_events([stored_event])[0]

    def to_domain_events(self, stored_events: Iterable[StoredEvent]) -> list[Any]:
        """The events, their sealed fields opened with one read of the keys for all."""
        events = [super(SealingMapper, self).to_domain_event(s) for s in stored_events]
        sealed = [vars(event)["sealed"] for event in events if vars(event).get("sealed")]
        if not sealed or self.keys is None:
            return events
        opened = self.keys.open_many(token for tokens in sealed for token in tokens.values())
        for event in events:
            state = vars(event)
            for field, token in (state.get("sealed") or {}).items():
                value = opened.get(token)
                if value is not None:
                    state[field] = value
        return events

    def to_sealed_domain_event(self, stored_event: StoredEvent) -> Any:
        """The event with its personal fields still sealed (``None``, the tokens in
        ``sealed``): for readers that need no personal value."""
        return super().to_domain_event(stored_event)


def decode_all(app: Application[Any], stored_events: list[StoredEvent]) -> list[Any]:
    """The application's domain events of these stored events, personal fields opened
    with one read of the keys (not one per event)."""
    mapper = app.mapper
    if isinstance(mapper, SealingMapper):
        return mapper.to_domain_events(stored_events)
    return [mapper.to_domain_event(stored) for stored in stored_events]


def sealed_decoder(app: Application[Any]) -> Callable[[StoredEvent], Any]:
    """The application's decoder of stored events that leaves personal fields sealed."""
    mapper = app.mapper
    if isinstance(mapper, SealingMapper):
        return mapper.to_sealed_domain_event
    return mapper.to_domain_event


def sealing_encoder(app: Application[Any]) -> Callable[[Any], tuple[StoredEvent, Any]]:
    """The application's encoder of domain events that also returns each event's sealed
    form (what ``sealed_decoder`` reads back from the stored event)."""
    mapper = app.mapper
    if isinstance(mapper, SealingMapper):

        def encode_sealing(domain_event: Any) -> tuple[StoredEvent, Any]:
            sealed = mapper.sealed_form(domain_event)
            return Mapper.to_stored_event(mapper, sealed), sealed

        return encode_sealing
    return lambda domain_event: (mapper.to_stored_event(domain_event), domain_event)


def _topic(domain_event: Any) -> str:
    cls = type(domain_event)
    return f"{cls.__module__}:{cls.__qualname__}"
