"""An organization's one webhook endpoint (SPEC 5.2): URL, optional secret, switch."""

from __future__ import annotations

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.actors import Actor

WEBHOOK_NAMESPACE = uuid5(NAMESPACE_URL, "https://tenzo.ai/devtools/webhook")


def webhook_id(org_id: UUID) -> UUID:
    """Each organization has at most one webhook, stored under an id derived from it."""
    return uuid5(WEBHOOK_NAMESPACE, str(org_id))


class Webhook(Aggregate):
    """The id is derived from the organization, so a webhook configured again after
    ``delete`` continues the same aggregate; ``configured_on`` (not ``created_on``) is
    when the current configuration began."""

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
        self.enabled = enabled
        self.deleted = False
        self.disabled_reason: str | None = None

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
