"""An organization, and the admin tokens that act for it."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.actors import Actor
from domain.credentials import credential_id


class Organization(Aggregate):
    @event("Created")
    def __init__(self, name: str, actor: Actor):
        self.name = name


class AdminToken(Aggregate):
    """An organization's admin token; its id is derived from the token's hash."""

    @staticmethod
    def create_id(token_hash: str) -> UUID:
        return credential_id(token_hash)

    @event("Issued")
    def __init__(self, org_id: UUID, token_hash: str, token_hint: str, actor: Actor):
        self.org_id = org_id
        self.token_hash = token_hash
        self.token_hint = token_hint
        self.revoked = False

    @event("Revoked")
    def revoke(self, actor: Actor) -> None:
        self.revoked = True
