"""Every `tenzo` command that opens the event store refuses a key that cannot read it
(SPEC 11): real processes, on SQLite and PostgreSQL. Each prints one clear message and
exits 1 instead of starting (the servers used to start and serve 500s) or crashing
with a traceback.
"""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import pytest

from services.bootstrap import build_application
from services.settings import Settings
from tests.conftest import Org
from tests.e2e.test_serve import free_port, tenzo_executable

COMMANDS = {
    "serve": ["serve"],
    "api": ["api", "--workers", "1"],
    "relay": ["relay"],
    "dispatcher": ["dispatcher"],
    "events": ["events"],
    "orgs-create": ["orgs", "create", "Globex"],
    "projections-rebuild": ["projections", "rebuild"],
}
# Long enough to start; a server that started runs until this expires (the old bug).
SECONDS = 45


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_command_with_another_key_refuses_to_start(
    command: str, settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    written = build_application(settings)
    try:
        Org(written, "Acme")
        before = written.recorder.max_notification_id()
    finally:
        written.close()
    env = {key: value for key, value in os.environ.items() if not key.startswith("TENZO_")}
    env |= settings_env | {
        "TENZO_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
        "TENZO_HTTP_PORT": str(free_port()),
    }
    try:
        finished = subprocess.run(
            [tenzo_executable(), *COMMANDS[command]],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=SECONDS,
        )
    except subprocess.TimeoutExpired as still_running:
        started = f"`tenzo {command}` started with a key that cannot read the store"
        raise AssertionError(started) from still_running
    assert finished.returncode == 1, finished.stdout + finished.stderr
    assert "Error: TENZO_ENCRYPTION_KEY cannot read the existing event store" in finished.stderr
    assert "Traceback" not in finished.stderr
    assert finished.stdout == ""
    again = build_application(settings)
    try:
        assert again.recorder.max_notification_id() == before  # nothing was written
    finally:
        again.close()
