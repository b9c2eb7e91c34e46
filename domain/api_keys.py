"""API keys that authenticate an organization's integrations on the Public API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.actors import Actor
from domain.credentials import credential_id

ApiKeyStatus = Literal["active", "expired", "revoked"]


class ApiKey(Aggregate):
    """A named key; its id is derived from the key's hash so it can be found by it."""

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
    ):
        self.org_id = org_id
        self.name = name
        self.key_hash = key_hash
        self.key_hint = key_hint
        self.expires_at = expires_at
        self.revoked_at: datetime | None = None

    def revoke(self, now: datetime, actor: Actor) -> None:
        """Revoke the key; revoking a revoked key changes nothing."""
        if self.revoked_at is None:
            self._revoked(revoked_at=now, actor=actor)

    @event("Revoked")
    def _revoked(self, revoked_at: datetime, actor: Actor) -> None:
        self.revoked_at = revoked_at

    def status(self, now: datetime) -> ApiKeyStatus:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"
