"""What the documented walk-throughs write into the working tree is ignored by git, so that
a live `tenzo_pk_` key (key.json) or a webhook secret is never committed by accident."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_BLOCK = re.compile(r"```sh\n(.*?)```", re.DOTALL)
# `tee F`, `> F`, `>> F`, curl's `-o F`, openssl's `-out F` / `-keyout F`
WRITES = re.compile(r"(?:\btee|>>?|\s-o|\s-out|\s-keyout)\s+([\w./-]+)")
SAVE_AS = re.compile(r"Save this as `([\w./-]+)`")


def files_the_walk_throughs_write() -> set[str]:
    written: set[str] = set()
    for document in DOCUMENTS:
        text = document.read_text()
        for block in SHELL_BLOCK.findall(text):
            for line in block.splitlines():
                code = line.split(" # ")[0]
                written.update(found for found in WRITES.findall(code) if not found.startswith("/"))
        written.update(SAVE_AS.findall(text))
    return written


def test_the_walk_throughs_write_files_that_are_found_here():
    written = files_the_walk_throughs_write()
    assert {"key.json", "receiver.py", "receiver-key.pem", "secret.txt"} <= written


@pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout"
)
def test_every_file_the_walk_throughs_write_is_ignored_by_git():
    written = sorted(files_the_walk_throughs_write())
    run = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin"],
        cwd=ROOT,
        input="\n".join(written) + "\n",
        capture_output=True,
        text=True,
        check=False,
    )
    ignored = set(run.stdout.split())
    assert not set(written) - ignored, f"not in .gitignore: {sorted(set(written) - ignored)}"
