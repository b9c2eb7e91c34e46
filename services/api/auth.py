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

from flask import g, request

from domain import credentials
from domain.actors import OPERATOR, actor
from domain.errors import Unauthorized
from services.api import metrics
from services.api.context import services
from services.api.problems import problem, unauthorized

log = logging.getLogger("tenzo.api.auth")

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
        g.org_id, g.actor = services().application.authenticate_admin(bearer_token())
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def require_api_key(view: F) -> F:
    """Authenticate a Public API key (``tenzo_pk_…``), count the use, apply the key's
    rate limit; sets ``g.org_id``, ``g.actor`` and ``g.api_key_id``.

    The key is looked up in the event store on every request (one indexed SELECT by
    the id derived from its hash), so revocation and expiry hold from the very next
    request in every process. Every refusal gets the same 401; the reason is logged
    with the key's hint only.
    """

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = services()
        token = ""
        try:
            token = bearer_token()
            key = ctx.application.authenticate_api_key(token)
        except Unauthorized as refusal:
            log.info("API key refused (%s): %s", _presented_hint(token), refusal)
            metrics.API_KEY_REFUSALS.labels(_reason(refusal)).inc()
            return unauthorized()
        ctx.usage.record(key.id, ctx.application.clock())
        wait = ctx.rate_limit.take(str(key.id))
        if wait > 0:
            metrics.RATE_LIMITED.inc()
            return problem(
                429,
                "Too Many Requests",
                "This API key is over its rate limit; retry after the given seconds.",
                type="/problems/rate-limited",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        g.org_id, g.actor, g.api_key_id = key.org_id, actor("api_key", key.id), key.id
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _presented_hint(token: str) -> str:
    """What a log may say about a presented credential: its prefix and last four."""
    if token.startswith((credentials.API_KEY_PREFIX, credentials.ADMIN_TOKEN_PREFIX)):
        return credentials.hint(token) if len(token) > 20 else "a truncated Tenzo credential"
    return "no Tenzo credential" if not token else "not a Tenzo credential"


def _reason(refusal: Unauthorized) -> str:
    text = str(refusal)
    for reason in ("no bearer", "malformed", "unknown", "expired", "revoked"):
        if text.startswith(reason):
            return reason.replace(" ", "_")
    return "other"
