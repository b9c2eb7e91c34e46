"""The dashboard's signed session cookie, its CSRF tokens and its sign-in check.

The cookie keeps only the admin token's id (its aggregate id, derived from the token's
hash), never the token: every request looks that id up in the event store, so a revoked
token ends its sessions on the very next request, in every process. The cookie is
signed with a key derived from the encryption key, so every API process agrees on it
without another setting.

A new API key or a generated webhook secret is shown once, after a redirect
(Post/Redirect/Get: a reload or Back repeats nothing): the POST seals it into the
cookie with the event store's cipher (``reveal_once``), and the page it redirects to
takes it out (``take_revealed``), so a second look, in any tab, finds nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import timedelta
from typing import Any
from uuid import UUID

from flask import Flask, Request, g, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_wtf.csrf import generate_csrf, validate_csrf
from wtforms import ValidationError

from domain.errors import Unauthorized
from services.api.context import services

LIFETIME = timedelta(hours=8)
COOKIE_NAME = "tenzo_dashboard"
CSRF_FIELD = "csrf_token"
_TOKEN_ID = "admin_token_id"
_SIGNED_IN_AT = "signed_in_at"
_REVEAL = "reveal"
_FORM = "form"


class CsrfRefused(Exception):
    """A form came without this session's CSRF token."""


def session_secret(encryption_key: str) -> bytes:
    """The key that signs session cookies: HMAC(encryption key, "dashboard-session")."""
    raw = base64.b64decode(encryption_key)
    return hmac.new(raw, b"dashboard-session", hashlib.sha256).digest()


class DashboardSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, ``Secure`` whenever the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        current: Request = request
        return bool(current.is_secure)

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if self.get_cookie_name(app) not in request.cookies:  # every API request
            return self.session_class()  # nothing to verify: skip building a serializer
        return super().open_session(app, request)


def configure_sessions(app: Flask) -> None:
    """Give the app the dashboard's cookie settings (the APIs never touch the session)."""
    app.secret_key = session_secret(app.extensions["tenzo"].settings.encryption_key)
    app.session_interface = DashboardSessionInterface()
    app.config.update(
        SESSION_COOKIE_NAME=COOKIE_NAME,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=LIFETIME,
        WTF_CSRF_TIME_LIMIT=int(LIFETIME.total_seconds()),
    )


def csrf_token() -> str:
    """This session's CSRF token, for a hidden field of every form."""
    token: str = generate_csrf()
    return token


def check_csrf() -> None:
    """Refuse a state-changing request without this session's CSRF token."""
    try:
        validate_csrf(request.form.get(CSRF_FIELD))
    except ValidationError as error:
        raise CsrfRefused(str(error)) from None


def sign_in(token: str) -> None:
    """Start a session for an admin token, or raise Unauthorized."""
    _, actor = services().application.authenticate_admin(token)
    session.clear()  # a fresh session (and CSRF token) for the signed-in user
    session.permanent = True
    session[_TOKEN_ID] = actor["id"]
    session[_SIGNED_IN_AT] = int(time.time())


def sign_out() -> None:
    session.clear()


def signed_in() -> bool:
    """Authenticate this request's session; set ``g.org_id`` and ``g.actor`` when it is valid.

    An unknown or revoked admin token, or a session older than LIFETIME, ends it.
    """
    token_id: Any = session.get(_TOKEN_ID)
    started: Any = session.get(_SIGNED_IN_AT)
    if not isinstance(token_id, str) or not isinstance(started, int):
        return False
    if time.time() - started > LIFETIME.total_seconds():
        session.clear()
        return False
    try:
        org_id, actor = services().application.authenticate_admin_token_id(UUID(token_id))
    except (Unauthorized, ValueError):
        session.clear()
        return False
    g.org_id, g.actor = org_id, actor
    # the token's last_used_at, as the admin API counts it (batched, no event)
    services().usage.record(UUID(token_id), services().application.clock())
    return True


def reveal_once(what: str, text: str) -> None:
    """Keep ``text`` for the next page that asks for ``what`` (sealed: AES-GCM with the
    event store's key, so the cookie never carries it readable)."""
    sealed = _cipher().encrypt(text.encode("utf-8"))
    session[_REVEAL] = {"what": what, "sealed": base64.b64encode(sealed).decode("ascii")}


def reveal_credential_once(what: str, credential_id: UUID, plaintext: str) -> None:
    """``reveal_once`` for a new key or token: its id (to show the rest) and plaintext."""
    reveal_once(what, f"{credential_id} {plaintext}")


def take_revealed_credential(what: str) -> tuple[UUID, str] | None:
    """What ``reveal_credential_once`` kept for ``what``, once: (id, plaintext)."""
    revealed = take_revealed(what)
    if revealed is None:
        return None
    credential_id, plaintext = revealed.split(" ", 1)
    return UUID(credential_id), plaintext


def take_revealed(what: str) -> str | None:
    """What ``reveal_once`` kept for ``what``, once; None after that."""
    kept = session.get(_REVEAL)
    if not isinstance(kept, dict) or kept.get("what") != what:
        return None
    session.pop(_REVEAL)
    return _cipher().decrypt(base64.b64decode(kept["sealed"])).decode("utf-8")


def keep_form(what: str, values: dict[str, str], errors: dict[str, list[str]]) -> None:
    """Keep a refused form's values and errors for the page the POST redirects to, so
    that page is a GET: Back and reload never meet a POST's answer ("Confirm Form
    Resubmission"). Only for forms without secrets (the cookie is signed, not sealed)."""
    session[_FORM] = {"what": what, "values": values, "errors": errors}


def take_form(what: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    """What ``keep_form`` kept for ``what`` (values, errors), once; empty after that."""
    kept = session.get(_FORM)
    if not isinstance(kept, dict) or kept.get("what") != what:
        return {}, {}
    session.pop(_FORM)
    return dict(kept.get("values") or {}), dict(kept.get("errors") or {})


def _cipher() -> Any:
    cipher = services().application.mapper.cipher
    if cipher is None:  # never: the event store is always encrypted
        raise RuntimeError("the dashboard reveals secrets only with an encrypted event store")
    return cipher
