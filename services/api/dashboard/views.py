"""The Developer Tools web page (issue 5): API keys, webhook, deliveries, audit log.

Server-rendered on the same use cases as the admin API, with the same validation
(the admin schemas, then the domain) so a person sees the messages an API client gets.
Every POST carries the session's CSRF token; a page that shows a secret once is the
answer to the POST that made it (never stored in the cookie to survive a redirect).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any, cast
from uuid import UUID

from eventsourcing.persistence import RecordConflictError
from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask.typing import ResponseReturnValue
from marshmallow import ValidationError

from contracts import admin as schemas
from contracts.delivery_schemas import DeliveryQuerySchema, RecoverSchema
from domain.application import DEFAULT_OVERLAP_HOURS
from domain.errors import CatalogBehind, Conflict, InvalidInput, NotFound, Unauthorized
from domain.webhooks import generate_secret
from services.api.admin import present_key, present_keys, present_webhook, present_webhook_status
from services.api.context import services
from services.api.dashboard import session as auth
from services.api.dashboard.audit import (
    KNOWN_EVENT_TYPES,
    AuditFilter,
    Names,
    describe,
    readable_type,
)
from services.api.dashboard.format import exact, expiry, field_errors, hours_left, relative
from services.api.delivery_routes import present_delivery

log = logging.getLogger("tenzo.dashboard")

blp = Blueprint("dashboard", __name__)
# The app factory builds a Flask app (BlueprintSetupState types it as flask.sansio's App).
blp.record_once(lambda state: auth.configure_sessions(cast(Flask, state.app)))

DELIVERY_PAGE_SIZE = 25
KEY_PAGE_SIZE = schemas.KEY_PAGE_SIZE_MAX
AUDIT_PAGE_SIZE = 50
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# A form shown again with its errors is answered 200, as a page like any other: a 4xx
# document is reported as an error in the browser's console, and nothing failed here.
FORM_SHOWN_AGAIN = 200
PUBLIC_ENDPOINTS = {"dashboard.index", "dashboard.sign_in_form", "dashboard.sign_in"}

# -- every request ----------------------------------------------------------------------


@blp.before_request
def _authenticate() -> ResponseReturnValue | None:
    if request.method == "POST":
        auth.check_csrf()
    if request.endpoint in PUBLIC_ENDPOINTS or auth.signed_in():
        return None
    flash("Sign in to continue.")
    return redirect(url_for(".sign_in_form"))


@blp.after_request
def _secure_headers(response: Response) -> Response:
    # Pages show keys and secrets once: never cache them, never frame them.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


@blp.context_processor
def _helpers() -> dict[str, Any]:
    now = services().application.clock()
    return {
        "dashboard_endpoints": current_app.view_functions.keys(),
        "csrf_token": auth.csrf_token,
        "exact": exact,
        "expiry": expiry,
        "hours_left": lambda value: hours_left(value, now),
        "relative": lambda value: relative(value, now),
    }


@blp.errorhandler(auth.CsrfRefused)
def _csrf_refused(error: auth.CsrfRefused) -> ResponseReturnValue:
    log.info("dashboard form refused: %s", error)
    return render_template("dashboard/csrf.html"), 400


@blp.errorhandler(NotFound)
def _not_found(error: NotFound) -> ResponseReturnValue:
    return _page("dashboard/not_found.html", status=404)


def _page(template: str, status: int = 200, **context: Any) -> ResponseReturnValue:
    organization = services().application.get_organization(g.org_id)
    return render_template(template, organization=organization, **context), status


# -- signing in -------------------------------------------------------------------------


@blp.get("/")
def index() -> ResponseReturnValue:
    if auth.signed_in():
        return redirect(url_for(".api_keys"))
    return redirect(url_for(".sign_in_form"))


@blp.get("/sign-in")
def sign_in_form() -> ResponseReturnValue:
    if auth.signed_in():
        return redirect(url_for(".api_keys"))
    return render_template("dashboard/sign_in.html")


@blp.post("/sign-in")
def sign_in() -> ResponseReturnValue:
    try:
        auth.sign_in(request.form.get("token", "").strip())
    except Unauthorized as error:
        log.info("dashboard sign-in refused (%s): %s", error.reason, error)
        # which mistake it is, as the API's 401 says it (domain/credential_refusals.py)
        page = render_template("dashboard/sign_in.html", error=str(error))
        return page, FORM_SHOWN_AGAIN
    return redirect(url_for(".api_keys"))


@blp.post("/sign-out")
def sign_out() -> ResponseReturnValue:
    auth.sign_out()
    flash("You have signed out.")
    return redirect(url_for(".sign_in_form"))


# -- API keys ---------------------------------------------------------------------------


def _keys_page(status: int = 200, **context: Any) -> ResponseReturnValue:
    application = services().application
    given = {"cursor": request.args["cursor"]} if request.args.get("cursor") else {}
    hide_revoked = request.args.get("hide") == "revoked"
    keys: list[Any] = []
    next_cursor, errors = None, {}
    try:  # the admin API's rules, and so its messages
        query = schemas.ApiKeyQuerySchema(only=("cursor",)).load(given)
        keys, next_cursor = application.list_api_keys(g.org_id, KEY_PAGE_SIZE, query.get("cursor"))
    except (ValidationError, InvalidInput) as error:
        errors = field_errors(error)
    except CatalogBehind as behind:  # the page (and a key just made) shows all the same
        log.warning("dashboard key list: %s", behind)
        errors = {"list": [str(behind)]}
    shown = present_keys(keys, application.clock())
    hidden = 0
    if hide_revoked:  # a page of the list, less its revoked keys
        hidden = sum(key["status"] == "revoked" for key in shown)
        shown = [key for key in shown if key["status"] != "revoked"]
    return _page(
        "dashboard/api_keys.html",
        status,
        tab="keys",
        keys=shown,
        hide_revoked=hide_revoked,
        hidden=hidden,
        renaming=request.args.get("rename"),  # the key whose name is being edited in place
        cursor=given.get("cursor"),
        next_cursor=next_cursor,
        page_errors=errors,
        **context,
    )


def _keys_url(**args: Any) -> str:
    """The keys page, keeping its filter (the form's hidden ``hide`` field)."""
    if request.values.get("hide") == "revoked":
        args["hide"] = "revoked"
    return url_for(".api_keys", **args)


@blp.get("/api-keys")
def api_keys() -> ResponseReturnValue:
    form, errors = auth.take_form("new-key")  # a refused form, after its redirect
    revealed = auth.take_revealed_credential("new-key")
    if revealed is None:
        return _keys_page(form=form, errors=errors)
    key_id, plaintext = revealed
    application = services().application
    key = application.get_api_key(g.org_id, key_id)
    return _keys_page(new_key=present_key(key, application.clock()) | {"key": plaintext})


@blp.post("/api-keys")
def generate_api_key() -> ResponseReturnValue:
    form = {"name": request.form.get("name", ""), "expires_on": request.form.get("expires_on", "")}
    body: dict[str, Any] = {"name": form["name"]}
    try:
        if form["expires_on"]:  # a date, which the API's schema makes the end of that day
            try:
                body["expires_at"] = date.fromisoformat(form["expires_on"]).isoformat()
            except ValueError:
                raise InvalidInput("Not a valid date.", field="expires_on") from None
        valid = schemas.ApiKeyCreateSchema().load(body)
        application = services().application
        key, plaintext = application.create_api_key(
            g.org_id, valid["name"], valid.get("expires_at"), g.actor
        )
    except (ValidationError, InvalidInput) as error:
        errors = field_errors(error)
        if "expires_at" in errors:
            errors["expires_on"] = errors.pop("expires_at")
        auth.keep_form("new-key", form, errors)  # shown by the page it redirects to
        return redirect(url_for(".api_keys", _anchor="generate-title"))
    auth.reveal_credential_once("new-key", key.id, plaintext)
    return redirect(url_for(".api_keys"))


@blp.post("/api-keys/<uuid:key_id>/rename")
def rename_api_key(key_id: UUID) -> ResponseReturnValue:
    """Rename in place (the row's form); the answer is a redirect, whatever happened."""
    application = services().application
    try:
        valid = schemas.ApiKeyRenameSchema().load({"name": request.form.get("name", "")})
        key = application.rename_api_key(g.org_id, key_id, valid["name"], g.actor)
    except (ValidationError, InvalidInput) as error:
        messages = [message for found in field_errors(error).values() for message in found]
        flash("The key was not renamed: " + " ".join(messages), "error")
    else:
        flash(f"The key {key.key_hint} is now named “{key.name}”.")
    return redirect(_keys_url())


@blp.get("/api-keys/<uuid:key_id>/roll")
def confirm_roll(key_id: UUID) -> ResponseReturnValue:
    application = services().application
    key = present_key(application.get_api_key(g.org_id, key_id), application.clock())
    if key["status"] != "active":
        flash(f"The key “{key['name']}” is {key['status']}: only an active key can be rolled.")
        return redirect(url_for(".api_keys"))
    form, errors = auth.take_form(f"roll {key_id}")  # a refused form, after its redirect
    return _page("dashboard/roll_key.html", tab="keys", key=key, form=form, errors=errors)


@blp.post("/api-keys/<uuid:key_id>/roll")
def roll_api_key(key_id: UUID) -> ResponseReturnValue:
    """Roll a key; the new one is shown once, after a redirect (Post/Redirect/Get)."""
    application = services().application
    hours = request.form.get("expires_in_hours", "").strip()
    try:
        try:
            valid = schemas.ApiKeyRollSchema().load({"expires_in_hours": int(hours)})
        except ValueError:
            raise InvalidInput(
                "Enter a whole number of hours, 0 to 168.", field="expires_in_hours"
            ) from None
        key, plaintext = application.roll_api_key(
            g.org_id, key_id, valid["expires_in_hours"], g.actor
        )
    except (ValidationError, InvalidInput) as error:
        auth.keep_form(f"roll {key_id}", {"expires_in_hours": hours}, field_errors(error))
        return redirect(url_for(".confirm_roll", key_id=key_id))
    except Conflict as error:  # revoked or expired meanwhile (or rolled in another tab)
        flash(str(error), "error")
        return redirect(url_for(".api_keys"))
    except RecordConflictError:  # another request changed the key at the same moment
        flash("The key changed while it was being rolled: nothing was done.", "error")
        return redirect(url_for(".api_keys"))
    auth.reveal_credential_once("new-key", key.id, plaintext)
    return redirect(url_for(".api_keys"))


@blp.get("/api-keys/<uuid:key_id>/revoke")
def confirm_revoke(key_id: UUID) -> ResponseReturnValue:
    application = services().application
    key = present_key(application.get_api_key(g.org_id, key_id), application.clock())
    return _page("dashboard/revoke_key.html", tab="keys", key=key)


@blp.post("/api-keys/<uuid:key_id>/revoke")
def revoke_api_key(key_id: UUID) -> ResponseReturnValue:
    key = services().application.revoke_api_key(g.org_id, key_id, g.actor)
    flash(f"The key “{key.name}” ({key.key_hint}) is revoked.")
    return redirect(_keys_url())


# -- webhook ----------------------------------------------------------------------------


def _current_webhook() -> dict[str, Any] | None:
    try:
        application = services().application
        return present_webhook(application.get_webhook(g.org_id), application.clock())
    except NotFound:
        return None


OVERLAP_CHOICES = (
    (0, "None: switch now"),
    (1, "1 hour"),
    (24, "24 hours"),
    (72, "3 days"),
    (168, "7 days"),
)


def _webhook_page(status: int = 200, **context: Any) -> ResponseReturnValue:
    try:  # with its health and, when the system disabled it, why (SPEC 10)
        webhook: dict[str, Any] | None = present_webhook_status(g.org_id)
    except NotFound:
        webhook = None
    except CatalogBehind as behind:  # the settings show all the same, without health
        log.warning("dashboard webhook health: %s", behind)
        webhook = _current_webhook()
    return _page(
        "dashboard/webhook.html",
        status,
        tab="webhook",
        webhook=webhook,
        overlap_choices=OVERLAP_CHOICES,
        default_overlap=DEFAULT_OVERLAP_HOURS,
        **context,
    )


@blp.get("/webhook")
def webhook() -> ResponseReturnValue:
    return _webhook_page(generated_secret=auth.take_revealed("new-secret"))


@blp.post("/webhook")
def save_webhook() -> ResponseReturnValue:
    """Create the webhook, or change its URL when it exists."""
    application, form = services().application, request.form
    url = form.get("url", "")
    existing = _current_webhook()
    try:
        if existing is None:
            body: dict[str, Any] = {"url": url, "enabled": form.get("enabled") == "on"}
            if form.get("secret"):
                body["secret"] = form["secret"]
            valid = schemas.WebhookPutSchema().load(body)
            application.configure_webhook(
                g.org_id, valid["url"], valid.get("secret"), valid["enabled"], g.actor
            )
            flash("Webhook saved.")
        else:
            valid = schemas.WebhookPatchSchema().load({"url": url})
            application.change_webhook(g.org_id, g.actor, url=valid["url"])
            flash("Webhook URL saved.")
    except (ValidationError, InvalidInput) as error:
        form_values = {"url": url, "enabled": form.get("enabled") == "on"}
        return _webhook_page(FORM_SHOWN_AGAIN, form=form_values, errors=field_errors(error))
    return redirect(url_for(".webhook"))


@blp.post("/webhook/secret")
def change_webhook_secret() -> ResponseReturnValue:
    """Set, change or generate the secret at once; a generated one is shown once.
    Removing it asks first (``confirm_remove_webhook_secret``)."""
    application, action = services().application, request.form.get("action")
    if action == "remove":
        return redirect(url_for(".confirm_remove_webhook_secret"))
    try:
        if action == "generate":
            generated = generate_secret()
            application.change_webhook(g.org_id, g.actor, secret=generated)
        else:
            valid = schemas.WebhookPatchSchema().load({"secret": request.form.get("secret", "")})
            application.change_webhook(g.org_id, g.actor, secret=valid["secret"])
            flash("Webhook secret saved.")
            return redirect(url_for(".webhook"))
    except (ValidationError, InvalidInput) as error:
        return _webhook_page(FORM_SHOWN_AGAIN, secret_errors=field_errors(error))
    auth.reveal_once("new-secret", generated)
    return redirect(url_for(".webhook"))


@blp.post("/webhook/secret/rotate")
def rotate_webhook_secret() -> ResponseReturnValue:
    """Rotate the secret with an overlap (SPEC 9): the API's rules and messages; a
    generated secret is shown once, on the page this redirects to."""
    application, form = services().application, request.form
    body: dict[str, Any] = {}
    try:
        if form.get("secret"):
            body["secret"] = form["secret"]
        overlap = form.get("overlap_hours", str(DEFAULT_OVERLAP_HOURS))
        if not overlap.isdigit():
            raise InvalidInput("Choose how long the previous secret stays valid.", "overlap_hours")
        body["overlap_hours"] = int(overlap)
        valid = schemas.WebhookSecretRotateSchema().load(body)
        _, generated, expires_at = application.rotate_webhook_secret(
            g.org_id, g.actor, secret=valid.get("secret"), overlap_hours=valid["overlap_hours"]
        )
    except (ValidationError, InvalidInput) as error:
        return _webhook_page(
            FORM_SHOWN_AGAIN, rotate_errors=field_errors(error), overlap=form.get("overlap_hours")
        )
    if expires_at is not None and expires_at > application.clock():
        flash(f"Secret rotated. The previous secret stays valid until {exact(expires_at)}.")
    else:
        flash("Secret rotated. Only the new secret signs deliveries.")
    if generated is not None:
        auth.reveal_once("new-secret", generated)
    return redirect(url_for(".webhook"))


@blp.get("/webhook/secret/remove")
def confirm_remove_webhook_secret() -> ResponseReturnValue:
    webhook = _current_webhook()
    if webhook is None or not webhook["secret_set"]:
        return redirect(url_for(".webhook"))
    return _page("dashboard/remove_secret.html", tab="webhook", webhook=webhook)


@blp.post("/webhook/secret/remove")
def remove_webhook_secret() -> ResponseReturnValue:
    services().application.change_webhook(g.org_id, g.actor, secret=None)
    flash("Webhook secret removed: deliveries are no longer signed.")
    return redirect(url_for(".webhook"))


@blp.post("/webhook/enabled")
def switch_webhook() -> ResponseReturnValue:
    enabled = request.form.get("enabled") == "true"
    services().application.change_webhook(g.org_id, g.actor, enabled=enabled)
    flash("Webhook delivery is on." if enabled else "Webhook delivery is off.")
    return redirect(url_for(".webhook"))


@blp.get("/webhook/delete")
def confirm_delete_webhook() -> ResponseReturnValue:
    webhook = _current_webhook()
    if webhook is None:
        return redirect(url_for(".webhook"))
    return _page("dashboard/delete_webhook.html", tab="webhook", webhook=webhook)


@blp.post("/webhook/delete")
def delete_webhook() -> ResponseReturnValue:
    services().application.delete_webhook(g.org_id, g.actor)
    flash("Webhook deleted.")
    return redirect(url_for(".webhook"))


@blp.post("/webhook/test")
def send_test_event() -> ResponseReturnValue:
    """Send a ``webhook.test`` delivery, then redirect (Post/Redirect/Get: a reload or
    Back never sends another) to its page, which follows it to its outcome and says
    that outcome, never success before it is known."""
    try:
        delivery = services().application.send_test_event(g.org_id, g.actor)
    except Conflict as error:
        flash(str(error), "error")
        return redirect(url_for(".webhook"))
    return redirect(url_for(".delivery", delivery_id=delivery.id, sent="test"))


# -- deliveries -------------------------------------------------------------------------


@blp.get("/deliveries")
def deliveries() -> ResponseReturnValue:
    given = {name: request.args[name] for name in ("status", "cursor") if request.args.get(name)}
    items: list[Any] = []
    next_cursor, errors = None, {}
    try:  # the admin API's rules, and so its messages
        query = DeliveryQuerySchema(only=("status", "cursor")).load(given)
        items, next_cursor = services().application.list_deliveries(
            g.org_id, query.get("status"), DELIVERY_PAGE_SIZE, query.get("cursor")
        )
    except (ValidationError, InvalidInput) as error:
        errors = field_errors(error)
    presented = [present_delivery(delivery) for delivery in items]
    current = _current_webhook()
    return _page(
        "dashboard/deliveries.html",
        webhook_enabled=bool(current and current["enabled"]),
        tab="deliveries",
        items=presented,
        any_pending=any(item["status"] == "pending" for item in presented),
        status_filter=given.get("status", ""),
        cursor=given.get("cursor"),
        next_cursor=next_cursor,
        query={"status": given["status"]} if "status" in given and not errors else {},
        errors=errors,
    )


RECOVER_HOURS = (1, 24, 168, 720)


@blp.get("/deliveries/recover")
def confirm_recover() -> ResponseReturnValue:
    """Say how many failed deliveries a recovery would send again, and ask."""
    application = services().application
    try:
        hours = int(request.args.get("hours", "24"))
    except ValueError:
        hours = 0
    if hours not in RECOVER_HOURS:
        flash("Choose one of the offered windows.", "error")
        return redirect(url_for(".deliveries"))
    webhook = _current_webhook()
    if webhook is None or not webhook["enabled"]:
        flash("Webhook delivery is disabled; enable it to recover deliveries.", "error")
        return redirect(url_for(".deliveries"))
    since = application.clock() - timedelta(hours=hours)
    count = len(application.failed_delivery_ids(g.org_id, since))
    return _page(
        "dashboard/recover.html", tab="deliveries", count=count, since=since, url=webhook["url"]
    )


@blp.post("/deliveries/recover")
def recover_deliveries() -> ResponseReturnValue:
    """Redeliver the failed deliveries of the window the confirmation showed, then
    redirect (Post/Redirect/Get: a reload sends nothing again)."""
    application = services().application
    try:
        window = RecoverSchema().load({"since": request.form.get("since", "")})
        ids = application.failed_delivery_ids(g.org_id, window["since"])
        count = application.recover_deliveries(g.org_id, ids, g.actor)
    except ValidationError:
        flash("The recovery window was not understood; choose it again.", "error")
    except Conflict as error:
        flash(str(error), "error")
    else:
        flash(
            f"{count:,} failed deliver{'y is' if count == 1 else 'ies are'} being sent again; "
            "each shows its outcome below as it arrives."
        )
    return redirect(url_for(".deliveries"))


SENT_ACTIONS = ("test", "redelivery")


@blp.get("/deliveries/<uuid:delivery_id>")
def delivery(delivery_id: UUID) -> ResponseReturnValue:
    """A delivery in full; ``?sent=test|redelivery`` (where an action redirects) adds
    the action's outcome as it stands: pending, then succeeded or failed."""
    found = present_delivery(services().application.get_delivery(g.org_id, delivery_id))
    sent = request.args.get("sent")
    return _page(
        "dashboard/delivery.html",
        tab="deliveries",
        delivery=found,
        sent=sent if sent in SENT_ACTIONS else None,
    )


@blp.post("/deliveries/<uuid:delivery_id>/redeliver")
def redeliver(delivery_id: UUID) -> ResponseReturnValue:
    try:
        services().application.request_redelivery(g.org_id, delivery_id, g.actor)
    except Conflict as error:
        flash(str(error), "error")
        return redirect(url_for(".delivery", delivery_id=delivery_id))
    return redirect(url_for(".delivery", delivery_id=delivery_id, sent="redelivery"))


# -- audit log --------------------------------------------------------------------------


@blp.get("/audit-log")
def audit_log() -> ResponseReturnValue:
    filters = AuditFilter(request.args)
    items, next_position = filters.page(g.org_id, AUDIT_PAGE_SIZE)
    names = Names(g.org_id, items)
    cursor = "before" if filters.newest_first else "after"
    return _page(
        "dashboard/audit_log.html",
        tab="audit",
        items=items,
        filters=filters,
        next_page=filters.query | {cursor: next_position} if next_position else None,
        known_types=[(name, readable_type(name)) for name in KNOWN_EVENT_TYPES],
        describe=lambda item: describe(item, names),
        actor_of=names.actor,
        readable_type=readable_type,
        pretty=lambda data: json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True),
    )


@blp.get("/audit-log/export")
def export_audit_log() -> ResponseReturnValue:
    filters = AuditFilter(request.args)
    if filters.errors:  # the page says what is wrong with the filters
        return redirect(url_for(".audit_log", **filters.query))

    def lines() -> Iterator[str]:
        for item in filters.matching(g.org_id):
            yield json.dumps(item, ensure_ascii=False) + "\n"

    return Response(
        stream_with_context(lines()),
        mimetype="application/x-ndjson",
        headers={"Content-Disposition": "attachment; filename=tenzo-events.ndjson"},
    )
