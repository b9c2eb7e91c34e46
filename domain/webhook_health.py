"""An endpoint's health and the rule that disables a failing one (SPEC 10).

The counts come from a projection of delivery outcomes (services/infrastructure/
webhook_health.py), never from a scan of the history per request. The rule is pure: the
catalog asks it, as each failed delivery is indexed, whether the streak it has reached
disables the webhook.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from domain.actors import SYSTEM
from domain.endpoint_health import EndpointHealth
from domain.errors import NotFound

if TYPE_CHECKING:
    from domain.ports import Catalog
    from domain.webhooks import Webhook


@dataclass(frozen=True)
class AutoDisableRule:
    """Disable a webhook once ``failures`` deliveries in a row have failed and the first
    of them is older than ``hours`` (TENZO_WEBHOOK_DISABLE_AFTER_FAILURES / _HOURS)."""

    failures: int = 100
    hours: float = 72.0

    def reason(self, consecutive: int, failing_since: datetime, now: datetime) -> str | None:
        """Why the webhook is to be disabled now, or None while it is not."""
        if consecutive < self.failures or now - failing_since < timedelta(hours=self.hours):
            return None
        return (
            f"Disabled automatically: the last {consecutive} deliveries all failed, the "
            f"first of them at {failing_since:%Y-%m-%d %H:%M:%S} UTC. Fix the endpoint "
            "(each failed delivery says why), then enable delivery again."
        )


class WebhookHealthUseCases:
    """Mixed into DeveloperTools: the endpoint's health, and disabling a failing one."""

    if TYPE_CHECKING:  # provided by DeveloperTools
        catalog: Catalog
        clock: Callable[[], datetime]

        def save(self, *objs: Any, **kwargs: Any) -> Any: ...
        def get_webhook(self, org_id: UUID) -> Webhook: ...

    def webhook_health(self, org_id: UUID) -> EndpointHealth:
        """The organization's endpoint health, including its newest writes."""
        self.catalog.wait_for_writes(org_id)
        return self.catalog.webhook_health(org_id, self.clock())

    def disable_failing_webhook(
        self, org_id: UUID, consecutive: int, failing_since: datetime, rule: AutoDisableRule
    ) -> bool:
        """Disable the organization's webhook (actor ``system``, with the reason) if
        ``rule`` says this streak of failures calls for it; whether it was disabled."""
        reason = rule.reason(consecutive, failing_since, self.clock())
        if reason is None:
            return False
        try:
            webhook = self.get_webhook(org_id)
        except NotFound:
            return False
        if not webhook.disable_automatically(reason, SYSTEM):
            return False
        self.save(webhook)
        return True
