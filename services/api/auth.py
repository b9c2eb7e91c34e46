"""Bearer authentication for the three audiences: operator, admin tokens, API keys.

Credentials are checked against the event store on every request (no cache), so a
revoked or expired credential is refused on the very next request in every process.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import g, request

from domain.actors import OPERATOR
from domain.errors import Unauthorized
from services.api.context import services

F = TypeVar("F", bound=Callable[..., Any])


def bearer_token() -> str:
    """The token of ``Authorization: Bearer <token>``, else Unauthorized."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise Unauthorized("no bearer token")
    return token


def require_operator(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        expected = services().settings.operator_token
        presented = bearer_token()
        if not expected or not hmac.compare_digest(presented.encode(), expected.encode()):
            raise Unauthorized("not the operator token")
        g.actor = OPERATOR
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def require_admin(view: F) -> F:
    """Authenticate an organization admin token; sets ``g.org_id`` and ``g.actor``."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.org_id, g.actor = services().tools.authenticate_admin(bearer_token())
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
