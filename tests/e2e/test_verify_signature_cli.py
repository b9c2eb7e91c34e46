"""`tenzo verify-signature` (the receiver's helper) as a real process: the secret comes
from TENZO_WEBHOOK_SECRET, from --secret-file or from --secret (which the process list
shows to every user of the machine), exactly one of them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import subprocess
from pathlib import Path

import pytest

from contracts.signing import sign, signature_headers
from tests.e2e.test_serve import tenzo_executable

SECRET = "s3cret-for-the-demo"
BODY = b'{"id":"evt_1","event":"interview.completed"}'


@pytest.fixture
def body_file(tmp_path: Path) -> Path:
    path = tmp_path / "last-body.json"
    path.write_bytes(BODY)
    return path


def verify(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("TENZO_")}
    return subprocess.run(
        [tenzo_executable(), "verify-signature", *args],
        env=clean | (env or {}),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_secret_from_the_environment(body_file: Path) -> None:
    signature = sign(SECRET, BODY)
    valid = verify("--signature", signature, str(body_file), env={"TENZO_WEBHOOK_SECRET": SECRET})
    assert (valid.returncode, valid.stdout) == (0, "valid\n"), valid.stderr
    wrong = verify("--signature", signature, str(body_file), env={"TENZO_WEBHOOK_SECRET": "other"})
    assert (wrong.returncode, wrong.stdout) == (1, "invalid\n"), wrong.stderr


@pytest.mark.parametrize("content", [SECRET, SECRET + "\n", SECRET + "\r\n"])
def test_the_secret_from_a_file(body_file: Path, tmp_path: Path, content: str) -> None:
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(content)
    result = verify(
        "--secret-file", str(secret_file), "--signature", sign(SECRET, BODY), str(body_file)
    )
    assert (result.returncode, result.stdout) == (0, "valid\n"), result.stderr


def test_the_secret_on_the_command_line_still_works(body_file: Path) -> None:
    result = verify("--secret", SECRET, "--signature", sign(SECRET, BODY), str(body_file))
    assert (result.returncode, result.stdout) == (0, "valid\n"), result.stderr


def test_an_empty_secret_file_is_refused(body_file: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    result = verify("--secret-file", str(empty), "--signature", sign(SECRET, BODY), str(body_file))
    assert result.returncode == 2
    assert "is empty" in result.stderr


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--secret", SECRET, "--secret-file", "SECRET_FILE"], {}, "--secret, --secret-file"),
        (
            ["--secret-file", "SECRET_FILE"],
            {"TENZO_WEBHOOK_SECRET": SECRET},
            "TENZO_WEBHOOK_SECRET, --secret-file",
        ),
        (["--secret", SECRET], {"TENZO_WEBHOOK_SECRET": SECRET}, "--secret, TENZO_WEBHOOK_SECRET"),
    ],
    ids=["option-and-file", "environment-and-file", "option-and-environment"],
)
def test_two_sources_are_refused(body_file, tmp_path, args, env, named) -> None:
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(SECRET)
    args = [str(secret_file) if arg == "SECRET_FILE" else arg for arg in args]
    result = verify(*args, "--signature", sign(SECRET, BODY), str(body_file), env=env)
    assert result.returncode == 2, result.stdout
    assert f"The webhook secret is given more than once ({named})" in result.stderr
    assert result.stdout == ""


def test_no_source_is_refused_naming_all_three(body_file: Path) -> None:
    result = verify("--signature", sign(SECRET, BODY), str(body_file))
    assert result.returncode == 2
    for way in ("TENZO_WEBHOOK_SECRET", "--secret-file", "--secret"):
        assert way in result.stderr
    assert result.stdout == ""


# -- the Standard Webhooks header, with two signatures during a rotation (SPEC 9) ------

NEW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.mark.parametrize("holder", [SECRET, NEW_SECRET])
def test_either_secret_verifies_a_webhook_signature_of_two(body_file: Path, holder: str) -> None:
    headers = signature_headers(NEW_SECRET, "evt_1", 1_700_000_000, BODY, previous_secret=SECRET)
    standard = ["--webhook-id", "evt_1", "--timestamp", "1700000000"]

    valid = verify(
        "--signature",
        headers["webhook-signature"],
        *standard,
        str(body_file),
        env={"TENZO_WEBHOOK_SECRET": holder},
    )
    assert (valid.returncode, valid.stdout) == (0, "valid\n"), valid.stderr
    wrong = verify(
        "--signature",
        headers["webhook-signature"],
        *standard,
        str(body_file),
        env={"TENZO_WEBHOOK_SECRET": "neither"},
    )
    assert (wrong.returncode, wrong.stdout) == (1, "invalid\n"), wrong.stderr


def test_a_whsec_secret_verifies_the_x_webhook_signature_with_its_decoded_bytes(
    body_file: Path,
) -> None:
    expected = hmac.new(base64.b64decode(NEW_SECRET[6:]), BODY, hashlib.sha256).hexdigest()
    result = verify(
        "--signature",
        "sha256=" + expected,
        str(body_file),
        env={"TENZO_WEBHOOK_SECRET": NEW_SECRET},
    )
    assert (result.returncode, result.stdout) == (0, "valid\n"), result.stderr


def test_a_webhook_signature_without_id_and_timestamp_is_a_usage_error(body_file: Path) -> None:
    headers = signature_headers(SECRET, "evt_1", 1_700_000_000, BODY)
    result = verify(
        "--signature",
        headers["webhook-signature"],
        str(body_file),
        env={"TENZO_WEBHOOK_SECRET": SECRET},
    )
    assert result.returncode == 2
    assert "--webhook-id and --timestamp" in result.stderr
