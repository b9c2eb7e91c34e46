"""contracts/webhook_payload.py: the fast rendering equals what the schema dumps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from contracts.webhook_payload import (
    RECOMMENDATIONS,
    WebhookPayloadSchema,
    encode_payload,
    render_payload,
)

text = st.text(max_size=30)
optional_text = st.none() | text
instants = st.datetimes(
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5, minutes=-30))])
)


def some_of(required: dict, optional: dict) -> st.SearchStrategy[dict]:
    """Objects with the required keys and any subset of the optional ones."""
    return st.fixed_dictionaries(required, optional=optional)


candidates = some_of(
    {"id": text},
    {
        "external_id": optional_text,
        "first_name": optional_text,
        "last_name": optional_text,
        "email": st.none() | st.emails(),
    },
)
jobs = some_of({"id": text}, {"external_id": optional_text, "title": optional_text})
payloads = st.fixed_dictionaries(
    {
        "id": text,
        "event": st.sampled_from(["interview.completed", "webhook.test"]),
        "created_at": instants,
        "organization_id": st.uuids().map(str),
        "data": st.fixed_dictionaries(
            {
                "interview_id": text,
                "candidate_id": text,
                "job_id": text,
                "completed_at": instants,
                "duration_seconds": st.none() | st.integers(min_value=0),
                "score": st.none() | st.floats(allow_nan=False, allow_infinity=False),
                "recommendation": st.none() | st.sampled_from(RECOMMENDATIONS),
                "summary": optional_text,
                "transcript_url": st.none() | st.just("https://transcripts.example.com/int_1"),
                "candidate": candidates,
                "job": jobs,
            }
        ),
    }
)


@given(payloads)
def test_rendering_gives_the_bytes_the_schema_dumps(payload):
    assert render_payload(payload) == encode_payload(WebhookPayloadSchema().dump(payload))


def test_timestamps_are_written_in_utc_with_a_z_and_unknown_fields_left_out():
    new_york = timezone(timedelta(hours=-5))
    payload = {
        "id": "evt-1",
        "event": "webhook.test",
        "created_at": datetime(2026, 11, 27, 12, 0, tzinfo=new_york),
        "organization_id": "o",
        "data": {"candidate": {"id": "c", "secret": "x"}, "job": {"id": "j"}, "extra": 1},
    }
    assert render_payload(payload) == (
        b'{"id":"evt-1","event":"webhook.test","created_at":"2026-11-27T17:00:00Z",'
        b'"organization_id":"o","data":{"candidate":{"id":"c"},"job":{"id":"j"}}}'
    )
