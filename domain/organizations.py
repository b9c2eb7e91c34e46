"""An organization, and the admin tokens that act for it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.actors import Actor
from domain.credentials import credential_id

AdminTokenStatus = Literal["active", "revoked"]
FIRST_TOKEN_NAME = "First admin token"


class Organization(Aggregate):
    @event("Created")
    def __init__(self, name: str, actor: Actor):
        self.name = name

    @event("AdminTokenRevoked")
    def note_admin_token_revoked(self, token_id: UUID, actor: Actor) -> None:
        """Recorded with each token revocation, in the same save: two revocations at once
        collide on this aggregate's version, so they cannot both leave no active token."""


class AdminToken(Aggregate):
    """An organization's admin token; its id is derived from the token's hash."""

    @staticmethod
    def create_id(token_hash: str) -> UUID:
        return credential_id(token_hash)

    @event("Issued")
    def __init__(
        self,
        org_id: UUID,
        token_hash: str,
        token_hint: str,
        actor: Actor,
        name: str = FIRST_TOKEN_NAME,  # absent from tokens issued before names existed
    ):
        self.org_id = org_id
        self.token_hash = token_hash
        self.token_hint = token_hint
        self.name = name
        self.revoked = False

    @event("Revoked")
    def revoke(self, actor: Actor) -> None:
        self.revoked = True

    @property
    def status(self) -> AdminTokenStatus:
        return "revoked" if self.revoked else "active"

    @property
    def revoked_at(self) -> datetime | None:
        """When it was revoked: revocation is a token's last event."""
        return self.modified_on if self.revoked else None
