"""Per-key token buckets of the Public API (services/api/rate_limit.py)."""

from __future__ import annotations

import pytest

from services.api.rate_limit import TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_rate():
    clock = Clock()
    buckets = TokenBuckets(per_second=2, burst=3, clock=clock)
    assert [buckets.take("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("k") == pytest.approx(0.5)  # a token every half second
    clock.now += 0.5
    assert buckets.take("k") == 0.0
    assert buckets.take("k") > 0


def test_buckets_are_per_key_and_refill_up_to_the_burst():
    clock = Clock()
    buckets = TokenBuckets(per_second=1, burst=2, clock=clock)
    assert buckets.take("a") == buckets.take("a") == 0.0
    assert buckets.take("a") > 0
    assert buckets.take("b") == 0.0
    clock.now += 3600
    assert [buckets.take("a") for _ in range(3)][:2] == [0.0, 0.0]
    assert buckets.take("a") > 0


def test_a_refused_request_takes_no_token():
    clock = Clock()
    buckets = TokenBuckets(per_second=1, burst=1, clock=clock)
    buckets.take("k")
    for _ in range(10):
        assert buckets.take("k") == pytest.approx(1.0)
    clock.now += 1.0
    assert buckets.take("k") == 0.0


def test_a_nonsense_limit_is_refused():
    with pytest.raises(ValueError):
        TokenBuckets(per_second=0, burst=1)
    with pytest.raises(ValueError):
        TokenBuckets(per_second=1, burst=0)


def test_buckets_full_again_are_dropped():
    """Idle keys do not stay in memory: once a bucket has refilled, it is dropped (it
    behaves as a new one would), so the dictionary holds only recently used keys."""
    clock = Clock()
    buckets = TokenBuckets(per_second=1, burst=2, clock=clock)
    for n in range(1000):
        assert buckets.take(f"key-{n}") == 0.0
    assert len(buckets) == 1000
    clock.now += 1.0  # half a refill: every bucket still short of full
    buckets.take("busy")
    buckets.take("busy")
    assert len(buckets) == 1001
    clock.now += 1.5  # the idle keys' buckets are full again, "busy"'s is not
    assert buckets.take("another") == 0.0
    assert len(buckets) == 2
    assert buckets.take("busy") == 0.0  # its tokens were kept: 1.5 refilled
    assert buckets.take("busy") > 0


def test_a_dropped_bucket_comes_back_full():
    clock = Clock()
    buckets = TokenBuckets(per_second=1, burst=2, clock=clock)
    assert buckets.take("k") == buckets.take("k") == 0.0
    assert buckets.take("k") > 0
    clock.now += 10
    assert buckets.take("other") == 0.0  # sweeps "k" away
    assert len(buckets) == 1
    assert [buckets.take("k") for _ in range(2)] == [0.0, 0.0]
    assert buckets.take("k") > 0
