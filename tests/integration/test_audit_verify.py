"""`tenzo audit verify`: an export tampered with in each of the four ways, and an event
store changed behind the application's back (an UPDATE, a DELETE), are caught at the
right position; untouched ones verify."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from services.cli.main import main
from services.infrastructure.storage import events_table

pytestmark = pytest.mark.timeout(300)
ADMIN = "/admin/v1"


@pytest.fixture
def exported(client, org, other_org) -> list[str]:
    for name in ("one", "two", "three"):
        client.post(f"{ADMIN}/api-keys", json={"name": name}, headers=org.headers)
        client.post(f"{ADMIN}/api-keys", json={"name": name}, headers=other_org.headers)
    export = client.get(f"{ADMIN}/events/export", headers=org.headers)
    lines: list[str] = export.get_data(as_text=True).splitlines()
    assert len(lines) == 5
    return lines


def audit_verify(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, ["audit", "verify", *args], input=stdin, env=env)


def write(tmp_path, lines: list[str]) -> str:
    path = tmp_path / "history.ndjson"
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


def position(line: str) -> int:
    return int(json.loads(line)["position"])


def test_an_untouched_export_verifies_from_a_file_and_from_standard_input(exported, tmp_path):
    from_file = audit_verify(write(tmp_path, exported))
    assert from_file.exit_code == 0, from_file.output
    assert f"head position {position(exported[-1])}" in from_file.output
    from_stdin = audit_verify("-", stdin="\n".join(exported))
    assert from_stdin.exit_code == 0 and from_stdin.output == from_file.output


def test_an_altered_item_is_named(exported, tmp_path):
    item = json.loads(exported[2])
    item["data"]["name"] = "renamed afterwards"
    tampered = [*exported[:2], json.dumps(item), *exported[3:]]
    result = audit_verify(write(tmp_path, tampered))
    assert result.exit_code == 1
    assert f"position {position(exported[2])}: altered" in result.output


def test_a_removed_item_is_named_by_the_one_after_it(exported, tmp_path):
    result = audit_verify(write(tmp_path, exported[:2] + exported[3:]))
    assert result.exit_code == 1
    assert f"position {position(exported[3])}: removed" in result.output


def test_an_inserted_item_is_named(exported, tmp_path):
    forged = json.loads(exported[2])
    forged["position"] += 1
    forged["data"]["name"] = "inserted"
    tampered = [*exported[:3], json.dumps(forged), *exported[3:]]
    result = audit_verify(write(tmp_path, tampered))
    assert result.exit_code == 1
    assert f"position {forged['position']}: inserted" in result.output


def test_reordered_items_are_named(exported, tmp_path):
    tampered = [exported[0], exported[1], exported[3], exported[2], exported[4]]
    result = audit_verify(write(tmp_path, tampered))
    assert result.exit_code == 1
    assert f"position {position(exported[3])}: reordered" in result.output


def test_an_earlier_head_is_proven_in_the_history_and_a_rewritten_one_fails(
    client, org, exported, tmp_path
):
    earlier = json.loads(exported[3])["hash"]
    client.post(f"{ADMIN}/api-keys", json={"name": "later"}, headers=org.headers)
    now = client.get(f"{ADMIN}/events/export", headers=org.headers).get_data(as_text=True)
    path = write(tmp_path, now.splitlines())
    assert audit_verify(path, "--head", earlier).exit_code == 0
    cut = write(tmp_path, exported[:3])  # a history cut before the head: still a chain
    assert audit_verify(cut).exit_code == 0
    result = audit_verify(cut, "--head", earlier)
    assert result.exit_code == 1 and "rewritten" in result.output


# -- the event store ------------------------------------------------------------------


def store_sql(application, sql: str, **params: Any) -> None:
    tables = application.catalog.tables
    notification = "notification_id" if tables.dialect == "postgres" else "rowid"
    with tables.transaction() as cursor:
        cursor.execute(sql.format(events=events_table(application), id=notification), params)


def test_a_changed_and_a_deleted_stored_event_are_listed(client, org, application, settings_env):
    created = [
        client.post(f"{ADMIN}/api-keys", json={"name": name}, headers=org.headers).json
        for name in ("first", "second")
    ]
    client.post(f"{ADMIN}/api-keys/{created[0]['id']}/revoke", headers=org.headers)
    items = client.get(f"{ADMIN}/events", headers=org.headers).json["items"]
    first, second, revoked = (item["position"] for item in items[-3:])
    clean = audit_verify("--store", env=settings_env)
    assert clean.exit_code == 0, clean.output
    assert clean.output.startswith("OK:")

    # An operator copies the second key's stored event over the first's (a valid
    # ciphertext: it decodes, to other content), and deletes the revocation.
    store_sql(
        application,
        "UPDATE {events} SET state = (SELECT state FROM {events} WHERE {id} = :second) "
        "WHERE {id} = :first",
        first=first,
        second=second,
    )
    store_sql(application, "DELETE FROM {events} WHERE {id} = :revoked", revoked=revoked)
    result = audit_verify("--store", env=settings_env)

    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == (
        f"position {first}: ApiKeyCreated v1 of {created[0]['id']} no longer matches its hash"
    )
    assert lines[1] == (
        f"position {revoked}: ApiKeyRevoked v2 of {created[0]['id']} "
        "was deleted from the event store"
    )
    assert lines[2].startswith("FAILED: 2 mismatches")


def test_stored_bytes_that_no_longer_decode_are_listed(client, org, application, settings_env):
    client.post(f"{ADMIN}/api-keys", json={"name": "first"}, headers=org.headers)
    changed = client.get(f"{ADMIN}/events/head", headers=org.headers).json["position"]
    # (not the newest event: a process whose key cannot read that one refuses to start)
    client.post(f"{ADMIN}/api-keys", json={"name": "second"}, headers=org.headers)
    head = client.get(f"{ADMIN}/events/head", headers=org.headers).json
    store_sql(
        application,
        "UPDATE {events} SET state = :junk WHERE {id} = :position",
        junk=b"\x00" * 40,
        position=changed,
    )
    result = audit_verify("--store", "--head", head["hash"], env=settings_env)
    assert result.exit_code == 1
    assert f"position {changed}: ApiKeyCreated v1 of " in result.output
    assert "cannot be decoded" in result.output
    assert "not in the stored chain" not in result.output  # the head itself is still there
