"""The relay's Prometheus metrics (docs/dispatcher.md): defined here, so a process
exports them only when it runs the relay (`tenzo relay`, `tenzo serve`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

RELAY_LAG = Gauge(
    "tenzo_relay_lag_events",
    "Events recorded in the event store but not yet confirmed by the broker",
    multiprocess_mode="livemax",
)
RELAY_PUBLISHED = Counter("tenzo_relay_published_total", "Domain events relayed to the broker")
