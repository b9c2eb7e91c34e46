"""Prometheus metrics of every process (served at GET /metrics)."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
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


def render() -> tuple[bytes, str]:
    """The exposition of this process, or of all gunicorn workers in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
