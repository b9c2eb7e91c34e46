"""Bearer authentication for the three audiences: operator, admin tokens, API keys.

Credentials are checked against the event store on every request (no cache), so a
revoked or expired credential is refused on the very next request in every process.
"""

from __future__ import annotations

import hmac
import logging
import math
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from uuid import UUID

from flask import g, request

from domain import credential_refusals as refusals
from domain import credentials
from domain.actors import OPERATOR, actor
from domain.errors import Unauthorized
from services.api import metrics
from services.api import problem_types as types
from services.api.context import services
from services.api.problems import problem, unauthorized

log = logging.getLogger("tenzo.api.auth")

F = TypeVar("F", bound=Callable[..., Any])


# Headers integrations put keys in by mistake (other APIs' conventions).
MISPLACED_KEY_HEADERS = ("X-API-Key", "Api-Key", "X-Auth-Token")


def bearer_token(kind: refusals.Kind | None) -> str:
    """The token of ``Authorization: Bearer <token>``, else Unauthorized saying what is
    wrong with the header. ``kind`` is what the route takes (None: the operator token)."""
    wanted = f"Authorization: Bearer {kind.prefix}…" if kind else "Authorization: Bearer <token>"
    header = request.headers.get("Authorization")
    if header is None or not header.strip():
        for name in MISPLACED_KEY_HEADERS:
            if request.headers.get(name):
                raise Unauthorized(
                    f"The credential was sent in the {name} header; this API reads it "
                    f"from the Authorization header only: send {wanted}.",
                    reason="misplaced",
                )
        raise Unauthorized(f"No Authorization header: send {wanted}.", reason="missing")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer":
        if scheme.startswith(credentials.PREFIXES):
            detail = f"The Authorization header lacks the Bearer scheme: send {wanted}."
        else:
            detail = f"The Authorization header does not use the Bearer scheme: send {wanted}."
        raise Unauthorized(detail, reason="not_bearer")
    if not token:
        raise Unauthorized(
            f"The Authorization header says Bearer but carries no credential: send {wanted}.",
            reason="missing",
        )
    if " " in token:
        raise Unauthorized(
            f"The Authorization header has more than one word after Bearer: send {wanted}, "
            "the credential alone.",
            reason="not_bearer",
        )
    return token


def require_operator(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        expected = services().settings.operator_token
        presented = bearer_token(None)
        if not expected or not hmac.compare_digest(presented.encode(), expected.encode()):
            raise Unauthorized(
                "That is not the operator token (TENZO_OPERATOR_TOKEN of this deployment), "
                "which creating organizations over HTTP needs.",
                reason="unknown",
            )
        g.actor = OPERATOR
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def require_admin(view: F) -> F:
    """Authenticate an organization admin token; sets ``g.org_id`` and ``g.actor``."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = services()
        token = bearer_token(refusals.ADMIN_TOKEN)
        g.org_id, g.actor = ctx.application.authenticate_admin(token)
        # last_used_at of admin tokens: the API keys' batched counter (no event, no write)
        ctx.usage.record(UUID(g.actor["id"]), ctx.application.clock())
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def require_api_key(view: F) -> F:
    """Authenticate a Public API key (``tenzo_pk_…``), count the use, apply the key's
    rate limit; sets ``g.org_id``, ``g.actor`` and ``g.api_key_id``.

    The key is looked up in the event store on every request (one indexed SELECT by
    the id derived from its hash), so revocation and expiry hold from the very next
    request in every process. A refusal's 401 says which mistake it is, showing at most
    the key's hint (domain/credential_refusals.py); the log has the same words.
    """

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = services()
        try:
            key = ctx.application.authenticate_api_key(bearer_token(refusals.API_KEY))
        except Unauthorized as refusal:
            log.info("API key refused (%s): %s", refusal.reason, refusal)
            metrics.API_KEY_REFUSALS.labels(refusal.reason).inc()
            return unauthorized(str(refusal))
        ctx.usage.record(key.id, ctx.application.clock())
        wait = ctx.rate_limit.take(str(key.id))
        if wait > 0:
            metrics.RATE_LIMITED.inc()
            return problem(
                429,
                "Too Many Requests",
                "This API key is over its rate limit; retry after the given seconds.",
                type=types.RATE_LIMITED,
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        g.org_id, g.actor, g.api_key_id = key.org_id, actor("api_key", key.id), key.id
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
