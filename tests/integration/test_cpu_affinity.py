"""A dispatcher's CPU claim (services/infrastructure/cpu_affinity.py): real lock files in a
directory of the test's own, and real processes that hold them or are killed."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from services.infrastructure.cpu_affinity import claim_free_cpu
from services.settings import ConfigurationError, Settings

ROOT = Path(__file__).resolve().parents[2]


def test_each_claim_takes_a_cpu_nobody_holds_and_a_release_frees_it(tmp_path):
    first = claim_free_cpu([0, 1], tmp_path)
    second = claim_free_cpu([0, 1], tmp_path)
    assert first is not None and second is not None
    assert (first.cpu, second.cpu) == (1, 0)  # from the last: CPU 0 takes most interrupts
    assert claim_free_cpu([0, 1], tmp_path) is None  # every CPU is claimed
    first.release()
    again = claim_free_cpu([0, 1], tmp_path)
    assert again is not None and again.cpu == 1
    again.release()
    second.release()


def test_a_killed_process_lets_go_of_its_claim(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from services.infrastructure.cpu_affinity import claim_free_cpu\n"
            f"claim = claim_free_cpu([0, 1], Path({str(tmp_path)!r}))\n"
            "print(claim.cpu, flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "1"
        taken = claim_free_cpu([0, 1], tmp_path)
        assert taken is not None and taken.cpu == 0  # CPU 1 is held by the other process
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        freed = claim_free_cpu([0, 1], tmp_path)
        assert freed is not None and freed.cpu == 1
        freed.release()
        taken.release()
    finally:
        holder.kill()
        holder.wait(10)


def _settings(**env: str) -> Settings:
    return Settings.from_env({"TENZO_DATABASE_URL": "sqlite:///:memory:", **env})


def test_the_setting_is_none_unless_set():
    assert _settings().dispatcher_cpu == "none"


@pytest.mark.parametrize(
    ("value", "choice"), [("", "none"), ("AUTO", "auto"), ("none", "none"), (" 1 ", "1")]
)
def test_the_setting_reads_auto_none_or_a_cpu_number(value, choice):
    assert _settings(TENZO_DISPATCHER_CPU=value).dispatcher_cpu == choice


@pytest.mark.parametrize("value", ["any", "-1", "1.5", "０"])
def test_anything_else_is_a_configuration_error(value):
    refused = "TENZO_DISPATCHER_CPU must be auto, none or a CPU number"
    with pytest.raises(ConfigurationError, match=refused):
        _settings(TENZO_DISPATCHER_CPU=value)


def test_a_lock_file_planted_as_a_link_is_not_followed(tmp_path):
    target = tmp_path / "someone-elses-file"
    target.write_text("kept")
    claims = tmp_path / "claims"
    claims.mkdir()
    (claims / "cpu-1.lock").symlink_to(target)
    claim = claim_free_cpu([0, 1], claims)
    assert claim is not None and claim.cpu == 0
    claim.release()
    assert target.read_text() == "kept"
    assert claims.stat().st_mode & 0o1777 == 0o1777  # any user's dispatchers claim here
