"""Who caused an event (SPEC 8): recorded on every event as ``actor``."""

from __future__ import annotations

from typing import Literal, TypedDict
from uuid import UUID

ActorType = Literal["operator", "admin_token", "api_key", "dispatcher", "system"]


class Actor(TypedDict):
    type: ActorType
    id: str | None


def actor(kind: ActorType, ident: UUID | str | None = None) -> Actor:
    return {"type": kind, "id": None if ident is None else str(ident)}


SYSTEM: Actor = actor("system")
OPERATOR: Actor = actor("operator")
DISPATCHER: Actor = actor("dispatcher")
