"""The README's curl walk-through, run as written against a real `tenzo serve`.

Each ```sh block of the walk-through is run in one bash session (the exported TOKEN is
the one the server printed, the port a free one); each output block after it must match
what the command printed: every plain `"field":value` pair and every plain line shown.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_serve import Serve, free_port

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Walk-through: API keys, the webhook, the event history"
BLOCK = re.compile(r"```(\w*)\n(.*?)```", re.DOTALL)
PLAIN_PAIR = re.compile(r'"(\w+)": ?("[A-Za-z/ -]*"|true|false|null|\d+)(?=[,}])')


def walk_through() -> list[tuple[str, str]]:
    """(commands, expected output) pairs of the walk-through, in order."""
    text = README.read_text()
    section = text[text.index(SECTION) :]
    section = section[: section.index("\n## ", len(SECTION))]
    blocks = BLOCK.findall(section)
    steps: list[tuple[str, str]] = []
    for (kind, body), following in zip(blocks, [*blocks[1:], ("", "")], strict=True):
        if kind == "sh":
            steps.append((body, following[1] if following[0] != "sh" else ""))
    return steps


@pytest.mark.skipif(shutil.which("curl") is None, reason="the walk-through uses curl")
def test_the_readme_walk_through_works_as_written(tmp_path: Path) -> None:
    steps = walk_through()
    assert len(steps) >= 9
    port = free_port()
    server = Serve(tmp_path, port)
    try:
        server.wait_for_dashboard()
        token = server.admin_token
        assert token
        for number, (commands, expected) in enumerate(steps):
            script = commands.replace("tenzo_admin_…", token).replace(":8080/", f":{port}/")
            marker = f"--- step {number} ---"
            # One bash session, so exports carry over; print a marker before each step.
            steps[number] = (f"echo '{marker}'\n{script}", expected)
        whole = "set -euo pipefail\n" + "\n".join(script for script, _ in steps)
        run = subprocess.run(
            ["bash", "-c", whole], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, run.stdout + run.stderr
        outputs = re.split(r"--- step \d+ ---\n", run.stdout)[1:]
        assert len(outputs) == len(steps)
        for (script, expected), output in zip(steps, outputs, strict=True):
            for field, value in PLAIN_PAIR.findall(expected):
                assert re.search(rf'"{field}": ?{re.escape(value)}', output), (
                    f"{field}={value} not in the output of\n{script}\n---\n{output}"
                )
            if not expected.lstrip().startswith("{"):
                for line in expected.splitlines():
                    if line.strip() and "…" not in line:
                        assert line.strip() in output, (line, output)
    finally:
        server.stop()
