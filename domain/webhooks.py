"""An organization's one webhook endpoint (SPEC 5.2): URL, optional secret, switch.

Rotating the secret (SPEC 9) keeps the one it replaces as ``previous_secret`` until
``previous_secret_expires_at``: deliveries are signed with both meanwhile. Once that
moment has passed, ``forget_previous_secret`` records ``PreviousSecretForgotten`` (the
dispatcher's sweeper calls it: services/dispatcher/dispatcher.py); signing
never waits for that event, it compares the expiry with the time of each attempt.
Any other change of the secret (PUT, PATCH, removal, deletion) replaces it at once and
ends an overlap.
"""

from __future__ import annotations

import base64
import secrets
from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.actors import Actor

WEBHOOK_NAMESPACE = uuid5(NAMESPACE_URL, "https://tenzo.ai/devtools/webhook")


STANDARD_SECRET_PREFIX = "whsec_"
GENERATED_SECRET_BYTES = 32


def webhook_id(org_id: UUID) -> UUID:
    """Each organization has at most one webhook, stored under an id derived from it."""
    return uuid5(WEBHOOK_NAMESPACE, str(org_id))


def generate_secret() -> str:
    """A new secret in Standard Webhooks form: ``whsec_`` + base64 of 32 random bytes."""
    key = secrets.token_bytes(GENERATED_SECRET_BYTES)
    return STANDARD_SECRET_PREFIX + base64.b64encode(key).decode("ascii")


def secret_problem(secret: str) -> str | None:
    """Why ``secret`` cannot be a webhook secret, or None: 1 to 256 characters. One in
    Standard Webhooks form (``whsec_<base64>``) is keyed with its decoded bytes, any
    other (a ``whsec_`` one that is not base64 after it, as this dashboard generated
    them before, too) with its UTF-8 bytes: contracts/signing.py."""
    if not 1 <= len(secret) <= 256:
        return "Secret must be 1 to 256 characters."
    return None


class Webhook(Aggregate):
    """The id is derived from the organization, so a webhook configured again after
    ``delete`` continues the same aggregate; ``configured_on`` (not ``created_on``) is
    when the current configuration began."""

    # Absent from events recorded before rotation existed: class defaults.
    previous_secret: str | None = None
    previous_secret_expires_at: datetime | None = None

    @staticmethod
    def create_id(org_id: UUID) -> UUID:
        return webhook_id(org_id)

    @event("Configured")
    def __init__(self, org_id: UUID, url: str, secret: str | None, enabled: bool, actor: Actor):
        self.org_id = org_id
        self.configured_on: datetime = self.created_on
        self._configure(url, secret, enabled)

    def _configure(self, url: str, secret: str | None, enabled: bool) -> None:
        self.url = url
        self.secret = secret
        self._end_overlap()
        self.enabled = enabled
        self.deleted = False
        self.disabled_reason: str | None = None

    def _end_overlap(self) -> None:
        self.previous_secret = None
        self.previous_secret_expires_at = None

    class Replaced(Aggregate.Event):
        """The whole configuration replaced (PUT). An explicit event class, because
        applying it needs its own timestamp: after a deletion it starts a new
        configuration, which counts as created at that moment."""

        url: str
        secret: str | None
        enabled: bool
        actor: Actor

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Webhook)
            if aggregate.deleted:
                aggregate.configured_on = self.timestamp
            aggregate._configure(self.url, self.secret, self.enabled)

    def replace(self, url: str, secret: str | None, enabled: bool, actor: Actor) -> None:
        """Replace the whole configuration (PUT), also after a deletion."""
        self.trigger_event(self.Replaced, url=url, secret=secret, enabled=enabled, actor=actor)

    @property
    def secret_set(self) -> bool:
        return self.secret is not None

    def change(
        self,
        actor: Actor,
        url: str | None = None,
        secret: str | None = None,
        remove_secret: bool = False,
        enabled: bool | None = None,
    ) -> None:
        """Apply a partial change (PATCH), recording one event per field that changes."""
        if url is not None and url != self.url:
            self._url_changed(url=url, actor=actor)
        if remove_secret and self.secret is not None:
            self._secret_changed(secret=None, actor=actor)
        elif secret is not None and secret != self.secret:
            self._secret_changed(secret=secret, actor=actor)
        if enabled is True and not self.enabled:
            self._enabled(actor=actor)
        elif enabled is False and self.enabled:
            self._disabled(actor=actor)

    @event("UrlChanged")
    def _url_changed(self, url: str, actor: Actor) -> None:
        self.url = url

    @event("SecretChanged")
    def _secret_changed(self, secret: str | None, actor: Actor) -> None:
        self.secret = secret
        self._end_overlap()

    def rotate_secret(
        self, secret: str, previous_secret_expires_at: datetime, now: datetime, actor: Actor
    ) -> None:
        """Replace the secret, keeping the current one (if any) valid until
        ``previous_secret_expires_at``; an expiry not after now (overlap 0) keeps none.
        A previous secret of an earlier rotation is dropped: two secrets at most."""
        keep = self.secret is not None and previous_secret_expires_at > now
        self._secret_rotated(
            secret=secret,
            previous_secret_expires_at=previous_secret_expires_at if keep else None,
            actor=actor,
        )

    @event("SecretRotated")
    def _secret_rotated(
        self, secret: str, previous_secret_expires_at: datetime | None, actor: Actor
    ) -> None:
        self.previous_secret = self.secret if previous_secret_expires_at is not None else None
        self.previous_secret_expires_at = previous_secret_expires_at
        self.secret = secret

    def previous_secret_valid(self, now: datetime) -> bool:
        """Whether deliveries made at ``now`` are signed with the previous secret too."""
        expires = self.previous_secret_expires_at
        return self.previous_secret is not None and expires is not None and now < expires

    def forget_previous_secret(self, now: datetime, actor: Actor) -> bool:
        """Forget a previous secret whose overlap has ended; whether there was one."""
        if self.previous_secret is None or self.previous_secret_valid(now):
            return False
        self._previous_secret_forgotten(actor=actor)
        return True

    @event("PreviousSecretForgotten")
    def _previous_secret_forgotten(self, actor: Actor) -> None:
        self._end_overlap()

    def disable_automatically(self, reason: str, actor: Actor) -> bool:
        """Switch delivery off because the endpoint keeps failing (SPEC 10), saying why;
        whether it was on (False: already off or deleted, nothing recorded)."""
        if not self.enabled or self.deleted:
            return False
        self._disabled(actor=actor, reason=reason)
        return True

    @event("Enabled")
    def _enabled(self, actor: Actor) -> None:
        self.enabled = True
        self.disabled_reason = None

    @event("Disabled")
    def _disabled(self, actor: Actor, reason: str | None = None) -> None:
        # ``reason`` is set when the system disabled it (auto-disable), None for a person.
        self.enabled = False
        self.disabled_reason = reason

    @event("Deleted")
    def delete(self, actor: Actor) -> None:
        self.deleted = True
        self.enabled = False
        self.secret = None
        self._end_overlap()
