"""select_where_in: rows matching a list of values, one statement on PostgreSQL (= ANY),
chunked IN lists on SQLite; through its users (many aggregates, usage, the follower)."""

from __future__ import annotations

from uuid import uuid4

from domain.actors import OPERATOR
from services.infrastructure.storage import IN_LIST_CHUNK, select_where_in
from tests.support.applications import application_on


def test_more_values_than_a_chunk_find_every_row_once(database_url):
    application = application_on(database_url)
    try:
        organization, _ = application.create_organization("Acme", OPERATOR)
        key, _ = application.create_api_key(organization.id, "k", None, OPERATOR)
        wanted = [uuid4() for _ in range(2 * IN_LIST_CHUNK + 7)]
        wanted[IN_LIST_CHUNK + 3] = key.id  # in the second chunk
        wanted.append(organization.id)

        found = application.many_aggregates.get_many(wanted)  # type: ignore[attr-defined]

        assert set(found) == {key.id, organization.id}
        assert found[key.id].name == "k"

        tables = application.catalog.tables  # type: ignore[attr-defined]
        ids = [str(value) for value in wanted]
        application.catalog.wait_for_writes(organization.id)  # type: ignore[attr-defined]
        rows = select_where_in(
            tables.read,
            tables.dialect,
            "SELECT aggregate_id FROM tenzo_catalog WHERE {match}",
            "aggregate_id",
            ids,
        )
        assert sorted(row["aggregate_id"] for row in rows) == sorted(
            [str(key.id), str(organization.id)]
        )
        assert select_where_in(tables.read, tables.dialect, "SELECT 1 WHERE {match}", "x", []) == []
    finally:
        application.close()
