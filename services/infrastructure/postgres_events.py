"""The PostgreSQL event recorder: eventsourcing's, sending new events in binary.

eventsourcing inserts a batch of events as one array of a composite type
(``unnest(%s::stored_event_uuid[])``). With ``%s`` psycopg picks the composite's text
dumper, which escapes every event's encrypted state into hex in Python: about 100 µs
for the three events of a webhook delivery, where the binary dumper (``%b``) takes about
20 µs (docs/dispatcher.md). The statement is otherwise eventsourcing's, to the letter;
it is named by ``APPLICATION_RECORDER_TOPIC`` (services/settings.py).
"""

from __future__ import annotations

from typing import Any

from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.sql import SQL, Identifier


class BinaryInsertRecorder(PostgresApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.insert_events_statement = SQL(
            "    INSERT INTO {schema}.{table} AS t ("
            "    originator_id, originator_version, topic, state)"
            "    SELECT originator_id, originator_version, topic, state"
            "    FROM unnest(%b::{schema}.{stored_event_type}[])"
            " RETURNING notification_id"
        ).format(
            schema=Identifier(self.datastore.schema),
            table=Identifier(self.events_table_name),
            stored_event_type=Identifier(self.stored_event_type_name),
        )
