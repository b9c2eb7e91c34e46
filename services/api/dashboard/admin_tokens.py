"""The dashboard's Admin tokens tab (SPEC 9): list, issue (shown once) and revoke.

Routes on the dashboard's blueprint (views.py), with its sign-in, CSRF and headers.
Every form answers with a redirect (Post/Redirect/Get): a new token waits sealed in the
session for the next page, which takes it out, so a reload or Back shows it no more.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from flask import flash, g, redirect, request, url_for
from flask.typing import ResponseReturnValue
from marshmallow import ValidationError

from contracts import admin as schemas
from domain.errors import Conflict, InvalidInput
from services.api.admin import present_token, present_tokens
from services.api.context import services
from services.api.dashboard import session as auth
from services.api.dashboard.format import field_errors
from services.api.dashboard.views import _page, blp


def _tokens_page(**context: Any) -> ResponseReturnValue:
    tokens = present_tokens(services().application.list_admin_tokens(g.org_id))
    return _page(
        "dashboard/admin_tokens.html",
        tab="tokens",
        tokens=tokens,
        current_id=g.actor["id"],
        **context,
    )


@blp.get("/admin-tokens")
def admin_tokens() -> ResponseReturnValue:
    form, errors = auth.take_form("new-token")  # a refused form, after its redirect
    revealed = auth.take_revealed_credential("new-token")
    if revealed is None:
        return _tokens_page(form=form, errors=errors)
    token_id, plaintext = revealed
    token = services().application.get_admin_token(g.org_id, token_id)
    return _tokens_page(new_token=present_token(token) | {"token": plaintext})


@blp.post("/admin-tokens")
def issue_admin_token() -> ResponseReturnValue:
    form = {"name": request.form.get("name", "")}
    try:  # the admin API's rules, and so its messages
        valid = schemas.AdminTokenCreateSchema().load(form)
        token, plaintext = services().application.issue_admin_token(
            g.org_id, valid["name"], g.actor
        )
    except (ValidationError, InvalidInput) as error:
        auth.keep_form("new-token", form, field_errors(error))
        return redirect(url_for(".admin_tokens", _anchor="issue-title"))
    auth.reveal_credential_once("new-token", token.id, plaintext)
    return redirect(url_for(".admin_tokens"))


@blp.get("/admin-tokens/<uuid:token_id>/revoke")
def confirm_revoke_token(token_id: UUID) -> ResponseReturnValue:
    token = present_token(services().application.get_admin_token(g.org_id, token_id))
    return _page("dashboard/revoke_token.html", tab="tokens", token=token, current_id=g.actor["id"])


@blp.post("/admin-tokens/<uuid:token_id>/revoke")
def revoke_admin_token(token_id: UUID) -> ResponseReturnValue:
    try:
        token = services().application.revoke_admin_token(g.org_id, token_id, g.actor)
    except Conflict as error:  # the organization's last active token
        flash(str(error), "error")
        return redirect(url_for(".admin_tokens"))
    flash(f"The admin token “{token.name}” ({token.token_hint}) is revoked.")
    # Revoking the token this session signed in with ends the session: the next page
    # asks to sign in again.
    return redirect(url_for(".admin_tokens"))
