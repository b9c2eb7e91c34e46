"""The dispatcher's Prometheus metrics (docs/dispatcher.md): defined here, so a process
exports them only when it runs the dispatcher (`tenzo dispatcher`, `tenzo serve`).

The gauges say how prometheus-client's multiprocess mode would combine processes
(services/infrastructure/metrics.py): the store-wide views take the largest of the
living processes, the deliveries held in memory add up.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PROJECTION_LAG_EVENTS = Gauge(
    "tenzo_projection_lag_events",
    "Events recorded in the event store that the dispatcher's projection has not seen",
    multiprocess_mode="livemax",
)
PROJECTION_LAG_SECONDS = Gauge(
    "tenzo_projection_lag_seconds",
    "Age of the oldest event the dispatcher's projection has not seen (0 when current)",
    multiprocess_mode="livemax",
)
DELIVERIES = Counter(
    "tenzo_webhook_deliveries_total",
    "Webhook deliveries ended, by outcome (succeeded, failed; not_sent: no enabled webhook)",
    ["outcome"],
)
ATTEMPT_LATENCY = Histogram(
    "tenzo_webhook_attempt_duration_seconds",
    "Duration of webhook attempts, by result (success, failure)",
    ["result"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
DELIVERIES_IN_FLIGHT = Gauge(
    "tenzo_webhook_deliveries_in_flight",
    "Deliveries the dispatcher holds: scheduled, attempting or waiting to retry",
    multiprocess_mode="livesum",
)
PENDING_DELIVERIES = Gauge(
    "tenzo_webhook_deliveries_pending",
    "Pending deliveries in the event store (scheduled, attempting or waiting to retry)",
    multiprocess_mode="livemax",
)
OLDEST_PENDING_SECONDS = Gauge(
    "tenzo_webhook_oldest_pending_seconds",
    "Age of the oldest pending delivery (0 when none is pending)",
    multiprocess_mode="livemax",
)
DELIVERIES_RESUMED = Counter(
    "tenzo_webhook_deliveries_resumed_total",
    "Pending deliveries a dispatcher took over: stalled (found by the sweeper) or "
    "handover (a redelivered message, a restart on the embedded broker)",
    ["reason"],
)
DEFERRED = Counter(
    "tenzo_webhook_deferred_total",
    "interview.completed messages set aside for a while because their endpoint is slow",
)
DEAD_LETTERED = Counter(
    "tenzo_dead_lettered_total", "Broker messages moved to tenzo.dead-letter", ["queue"]
)
