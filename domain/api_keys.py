"""API keys that authenticate an organization's integrations on the Public API."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.actors import Actor
from domain.credentials import credential_id
from domain.errors import Conflict

ApiKeyStatus = Literal["active", "expired", "revoked"]

EXPIRES_SOON = timedelta(days=7)
"""A key whose expiry is this close is listed with ``expires_soon`` (SPEC 9)."""

ROLL_OVERLAP_HOURS_MAX = 168


class ApiKey(Aggregate):
    """A named key; its id is derived from the key's hash so it can be found by it.

    Rolling a key (SPEC 9) makes a new key of the same name (``rolled_from`` this one)
    and moves this key's expiry to the earlier of its own and the end of the overlap:
    the old key keeps working until then and is refused like any expired key after.
    """

    @staticmethod
    def create_id(key_hash: str) -> UUID:
        return credential_id(key_hash)

    @event("Created")
    def __init__(
        self,
        org_id: UUID,
        name: str,
        key_hash: str,
        key_hint: str,
        expires_at: datetime | None,
        actor: Actor,
        rolled_from: UUID | None = None,  # absent from keys created before rolling existed
    ):
        self.org_id = org_id
        self.name = name
        self.key_hash = key_hash
        self.key_hint = key_hint
        self.expires_at = expires_at
        self.revoked_at: datetime | None = None
        self.rolled_from = rolled_from
        self.rolled_to: UUID | None = None

    def revoke(self, now: datetime, actor: Actor) -> None:
        """Revoke the key; revoking a revoked key changes nothing."""
        if self.revoked_at is None:
            self._revoked(revoked_at=now, actor=actor)

    @event("Revoked")
    def _revoked(self, revoked_at: datetime, actor: Actor) -> None:
        self.revoked_at = revoked_at

    def rename(self, name: str, actor: Actor) -> None:
        """Give the key another name; the same name changes nothing."""
        if name != self.name:
            self._renamed(name=name, actor=actor)

    @event("Renamed")
    def _renamed(self, name: str, actor: Actor) -> None:
        self.name = name

    def roll(self, now: datetime, overlap: timedelta, rolled_to: UUID, actor: Actor) -> None:
        """Hand over to the key ``rolled_to``: this key expires at the earlier of its own
        expiry and ``now + overlap``. Only an active key can be rolled (Conflict)."""
        status = self.status(now)
        if status != "active":
            raise Conflict(
                f"The key {self.key_hint} is {status}: only an active key can be rolled."
            )
        ends = now + overlap
        if self.expires_at is not None and self.expires_at < ends:
            ends = self.expires_at
        self._rolled(rolled_to=rolled_to, expires_at=ends, actor=actor)

    @event("Rolled")
    def _rolled(self, rolled_to: UUID, expires_at: datetime, actor: Actor) -> None:
        self.rolled_to = rolled_to
        self.expires_at = expires_at

    def status(self, now: datetime) -> ApiKeyStatus:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def expires_soon(self, now: datetime) -> bool:
        """True for an active key whose expiry is within EXPIRES_SOON."""
        return (
            self.status(now) == "active"
            and self.expires_at is not None
            and self.expires_at - now <= EXPIRES_SOON
        )
