"""The README's Public API walk-through, run as written against a real `tenzo serve`.

Same rules as tests/e2e/test_readme.py: the ```sh blocks run in one bash session with
the printed admin token and a free port; each output block after a command must match
what it printed (every plain `"field":value` pair; every plain line of a non-JSON block).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_readme import BLOCK, PLAIN_PAIR, README
from tests.e2e.test_serve import Serve, free_port

SECTION = "## Public API walk-through"


def walk_through() -> list[tuple[str, str]]:
    text = README.read_text()
    section = text[text.index(SECTION) :]
    section = section[: section.index("\n## ", len(SECTION))]
    blocks = BLOCK.findall(section)
    return [
        (body, following[1] if following[0] != "sh" else "")
        for (kind, body), following in zip(blocks, [*blocks[1:], ("", "")], strict=True)
        if kind == "sh"
    ]


@pytest.mark.skipif(shutil.which("curl") is None, reason="the walk-through uses curl")
def test_the_public_api_walk_through_works_as_written(tmp_path: Path) -> None:
    steps = walk_through()
    assert len(steps) >= 6
    port = free_port()
    server = Serve(tmp_path, port)
    try:
        server.wait_for_dashboard()
        token = server.admin_token
        assert token
        scripts = []
        for number, (commands, _) in enumerate(steps):
            script = commands.replace("tenzo_admin_…", token).replace(":8080/", f":{port}/")
            scripts.append(f"echo '--- step {number} ---'\n{script}")
        run = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + "\n".join(scripts)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        outputs = re.split(r"--- step \d+ ---\n", run.stdout)[1:]
        assert len(outputs) == len(steps)
        for (commands, expected), output in zip(steps, outputs, strict=True):
            for field, value in PLAIN_PAIR.findall(expected):
                assert re.search(rf'"{field}": ?{re.escape(value)}', output), (
                    f"{field}={value} not in the output of\n{commands}\n---\n{output}"
                )
            if not expected.lstrip().startswith("{"):
                for line in expected.splitlines():
                    if line.strip() and "…" not in line:
                        assert line.strip() in output, (line, output)
        assert "tenzo_pk_" not in "".join(server.output).replace("tenzo_pk_…", "")
    finally:
        server.stop()
