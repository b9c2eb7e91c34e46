"""An endpoint's health as the admin API shows it (SPEC 10): a value, read from a
projection (services/infrastructure/webhook_health.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class EndpointHealth:
    """How an organization's endpoint has answered: the last 24 hours, and the streak."""

    deliveries_24h: int = 0
    succeeded_24h: int = 0
    failed_24h: int = 0
    consecutive_failures: int = 0
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    p50_ms_24h: int | None = None
    failing_since: datetime | None = None
    """When the first of the consecutive failed deliveries failed (None: no streak)."""

    @property
    def success_rate_24h(self) -> float | None:
        """Succeeded / ended deliveries of the last 24 hours (None without any)."""
        return self.succeeded_24h / self.deliveries_24h if self.deliveries_24h else None
