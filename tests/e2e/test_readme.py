"""The README's curl walk-throughs, run as written against a real `tenzo serve`
(see tests/support/readme_walkthrough.py for the rules)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.readme_walkthrough import run_walk_through

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="the walk-throughs use curl")


def test_the_readme_walk_through_works_as_written(tmp_path: Path) -> None:
    run_walk_through(
        "## Walk-through: API keys, the webhook, the event history", tmp_path, min_steps=9
    )


def test_the_rolling_and_admin_token_walk_through_works_as_written(tmp_path: Path) -> None:
    server_output = run_walk_through(
        "## Walk-through: rolling and renaming keys, admin tokens", tmp_path, min_steps=8
    )
    assert "tenzo_pk_" not in server_output.replace("tenzo_pk_…", "")


def test_the_public_api_walk_through_works_as_written(tmp_path: Path) -> None:
    server_output = run_walk_through("## Public API walk-through", tmp_path, min_steps=6)
    assert "tenzo_pk_" not in server_output.replace("tenzo_pk_…", "")
