"""Runs a README walk-through as written against a real `tenzo serve`.

The ```sh blocks of one README section run in one bash session (exports carry over),
with the admin token the server printed and a free port; each output block after a
command must match what it printed: every plain `"field":value` pair, and every plain
line of a non-JSON block.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.e2e.test_serve import Serve, free_port

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"```(\w*)\n(.*?)```", re.DOTALL)
PLAIN_PAIR = re.compile(r'"(\w+)": ?("[A-Za-z/ -]*"|true|false|null|\d+)(?=[,}])')


def walk_through(section_heading: str) -> list[tuple[str, str]]:
    """(commands, expected output) pairs of a README section, in order."""
    text = README.read_text()
    section = text[text.index(section_heading) :]
    section = section[: section.index("\n## ", len(section_heading))]
    blocks = BLOCK.findall(section)
    return [
        (body, following[1] if following[0] != "sh" else "")
        for (kind, body), following in zip(blocks, [*blocks[1:], ("", "")], strict=True)
        if kind == "sh"
    ]


def run_walk_through(section_heading: str, workdir: Path, min_steps: int) -> str:
    """Run the section's commands against a fresh server, check every shown output, and
    return everything the server printed."""
    steps = walk_through(section_heading)
    assert len(steps) >= min_steps
    port = free_port()
    server = Serve(workdir, port)
    try:
        server.wait_for_dashboard()
        token = server.admin_token
        assert token
        scripts = [
            f"echo '--- step {number} ---'\n"
            + commands.replace("tenzo_admin_…", token).replace(":8080/", f":{port}/")
            for number, (commands, _) in enumerate(steps)
        ]
        run = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + "\n".join(scripts)],
            cwd=workdir,
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
    finally:
        server.stop()
    return "".join(server.output)
