"""Each process exports only the metrics it owns: the parts of `tenzo api`, `tenzo relay`
and `tenzo dispatcher` built as their commands build them, each in a fresh interpreter
(this one has imported every part), on SQLite and the embedded broker; then the
``tenzo_`` metrics in prometheus-client's registry, which /metrics and
TENZO_METRICS_PORT serve, are listed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

API = {
    "tenzo_http_requests",
    "tenzo_http_request_duration_seconds",
    "tenzo_api_key_refusals",
    "tenzo_rate_limited",
    "tenzo_usage_flushes",
}
RELAY = {"tenzo_relay_lag_events", "tenzo_relay_published"}
DISPATCHER = {
    "tenzo_projection_lag_events",
    "tenzo_projection_lag_seconds",
    "tenzo_webhook_deliveries",
    "tenzo_webhook_attempt_duration_seconds",
    "tenzo_webhook_deliveries_in_flight",
    "tenzo_webhook_deliveries_pending",
    "tenzo_webhook_oldest_pending_seconds",
    "tenzo_webhook_deliveries_resumed",
    "tenzo_webhook_deferred",
    "tenzo_dead_lettered",
}
BUILD = {
    "api": "from services.api.wsgi import create; create()",
    "relay": "from services.bootstrap import build_application, build_relay\n"
    "build_relay(settings, build_application(settings))",
    "dispatcher": "from services.bootstrap import build_application, build_dispatcher\n"
    "build_dispatcher(settings, build_application(settings))",
}
LIST_METRICS = """
from prometheus_client import REGISTRY
from services.settings import Settings
settings = Settings.from_env()
{build}
names = {{m.name for m in REGISTRY.collect() if m.name.startswith("tenzo_")}}
print(json.dumps(sorted(names)))
"""


@pytest.mark.parametrize(
    ("process", "owned"), [("api", API), ("relay", RELAY), ("dispatcher", DISPATCHER)]
)
def test_a_process_exports_only_its_own_metrics(
    tmp_path: Path, encryption_key: str, process: str, owned: set[str]
) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TENZO_")}
    env |= {
        "TENZO_DATABASE_URL": f"sqlite:///{tmp_path}/events.sqlite3",
        "TENZO_BROKER_URL": f"filesystem://{tmp_path}/broker",
        "TENZO_ENCRYPTION_KEY": encryption_key,
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    script = "import json\n" + LIST_METRICS.format(build=BUILD[process])
    ran = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    assert set(json.loads(ran.stdout.splitlines()[-1])) == owned
