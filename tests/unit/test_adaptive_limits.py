"""AdaptiveLimits: the AIMD rules of per-organization concurrency."""

from __future__ import annotations

from services.dispatcher.adaptive_limits import AdaptiveLimits


def test_a_new_organization_starts_at_the_initial_limit():
    limits = AdaptiveLimits(ceiling=8, initial=4)
    assert limits.limit("acme") == 4
    assert limits.answered_at("acme") is None


def test_each_answer_adds_one_up_to_the_ceiling():
    limits = AdaptiveLimits(ceiling=8, initial=4)
    seen = []
    for second in range(6):
        limits.answered("acme", now=float(second))
        seen.append(limits.limit("acme"))
    assert seen == [5, 6, 7, 8, 8, 8]
    assert limits.answered_at("acme") == 5.0


def test_an_unanswered_attempt_brings_the_limit_back_to_one():
    limits = AdaptiveLimits(ceiling=8, initial=8)
    seen = []
    for _ in range(3):
        limits.unanswered("acme")
        seen.append(limits.limit("acme"))
    assert seen == [1, 1, 1]


def test_answers_bring_a_decreased_limit_back():
    limits = AdaptiveLimits(ceiling=8, initial=8)
    limits.unanswered("acme")
    assert limits.limit("acme") == 1
    for second in range(3):
        limits.answered("acme", now=float(second))
    assert limits.limit("acme") == 4


def test_organizations_are_independent():
    limits = AdaptiveLimits(ceiling=8, initial=4)
    limits.unanswered("hanging")
    limits.answered("busy", now=1.0)
    assert (limits.limit("hanging"), limits.limit("busy"), limits.limit("new")) == (1, 5, 4)


def test_the_initial_limit_is_within_one_and_the_ceiling():
    assert AdaptiveLimits(ceiling=3, initial=10).limit("acme") == 3
    assert AdaptiveLimits(ceiling=0, initial=0).limit("acme") == 1


def test_the_least_recently_seen_organizations_are_forgotten_beyond_the_bound():
    limits = AdaptiveLimits(ceiling=8, initial=4, remembered=2)
    limits.unanswered("a")
    limits.unanswered("b")
    limits.unanswered("a")  # seen again: "b" is now the least recently seen
    limits.unanswered("c")
    assert (limits.limit("a"), limits.limit("b"), limits.limit("c")) == (1, 4, 1)


def test_backpressure_halves_the_limit_and_counts_as_an_answer():
    limits = AdaptiveLimits(ceiling=8, initial=8)
    limits.pushed_back("acme", now=1.0)  # a 429 or a 503
    assert limits.limit("acme") == 4 and limits.answered_at("acme") == 1.0
    limits.pushed_back("acme", now=2.0)
    limits.pushed_back("acme", now=3.0)
    limits.pushed_back("acme", now=4.0)
    assert limits.limit("acme") == 1  # never below one
    assert limits.answered_at("acme") == 4.0  # an answer: the endpoint is not hanging
    limits.answered("acme", now=5.0)
    assert limits.limit("acme") == 2
