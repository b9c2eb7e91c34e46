"""Prometheus metrics of every process (served at GET /metrics)."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

HTTP_REQUESTS = Counter(
    "tenzo_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "tenzo_http_request_duration_seconds", "HTTP request latency", ["method", "route"]
)
API_KEY_REFUSALS = Counter(
    "tenzo_api_key_refusals_total", "Public API requests refused with 401", ["reason"]
)
RATE_LIMITED = Counter("tenzo_rate_limited_total", "Public API requests refused with 429")
USAGE_FLUSHES = Counter("tenzo_usage_flushes_total", "API key usage batches written")

# -- relay and dispatcher (docs/dispatcher.md) ------------------------------------------
RELAY_LAG = Gauge(
    "tenzo_relay_lag_events",
    "Events recorded in the event store but not yet confirmed by the broker",
    multiprocess_mode="max",
)
RELAY_PUBLISHED = Counter("tenzo_relay_published_total", "Domain events relayed to the broker")
PROJECTION_LAG_EVENTS = Gauge(
    "tenzo_projection_lag_events",
    "Events recorded in the event store that the dispatcher's projection has not seen",
    multiprocess_mode="max",
)
PROJECTION_LAG_SECONDS = Gauge(
    "tenzo_projection_lag_seconds",
    "Age of the oldest event the dispatcher's projection has not seen (0 when current)",
    multiprocess_mode="max",
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
    multiprocess_mode="max",
)
OLDEST_PENDING_SECONDS = Gauge(
    "tenzo_webhook_oldest_pending_seconds",
    "Age of the oldest pending delivery (0 when none is pending)",
    multiprocess_mode="max",
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


def render() -> tuple[bytes, str]:
    """The exposition of this process, or of all gunicorn workers in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
