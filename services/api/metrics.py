"""The API's Prometheus metrics: defined here, so a process exports them only when it
serves the API (`tenzo api`'s workers, `tenzo serve`).

Under `tenzo api` they live in prometheus-client's multiprocess files, one per worker,
and /metrics adds them up (services/infrastructure/metrics.py).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
