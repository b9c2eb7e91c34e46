"""How the dashboard words expiries: the day the person chose, and an overlap's hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.api.dashboard.format import expiry, hours_left


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        (datetime(2027, 2, 1, tzinfo=UTC), "Jan 31, 2027, end of day UTC"),
        (datetime(2027, 1, 1, tzinfo=UTC), "Dec 31, 2026, end of day UTC"),
        (datetime(2027, 1, 31, 17, 0, tzinfo=UTC), "Jan 31, 2027, 17:00 UTC"),
        (datetime(2027, 2, 1, 0, 0, 1, tzinfo=UTC), "Feb 1, 2027, 00:00 UTC"),
        ("2027-02-01T00:00:00Z", "Jan 31, 2027, end of day UTC"),
        (None, ""),
    ],
)
def test_an_expiry_reads_as_the_day_chosen(stored, shown):
    assert expiry(stored) == shown


@pytest.mark.parametrize(
    ("left", "shown"),
    [
        (timedelta(hours=24), "in 24 h"),
        (timedelta(hours=23, minutes=59, seconds=59), "in 23 h"),
        (timedelta(minutes=40), "in 40 min"),
        (timedelta(seconds=30), "in less than a minute"),
        (timedelta(0), "now"),
    ],
)
def test_an_overlap_counts_down_in_hours(left, shown):
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    assert hours_left(now + left, now) == shown
