"""LFU with aging: the least asked for lately leaves; old favourites fade."""

from __future__ import annotations

import pytest

from serval.models.eviction import Budget, LFUPolicy, TraceRequest, make_policy, replay


def test_least_frequently_used_leaves_first_whatever_the_size() -> None:
    policy = LFUPolicy()
    policy.insert("big-hot", 10**9, 0.1)
    policy.insert("small-cold", 1, 100.0)
    for _ in range(3):
        policy.hit("big-hot")
    assert policy.victim() == "small-cold"


def test_counts_age_with_a_half_life() -> None:
    policy = LFUPolicy(half_life=10)
    policy.insert("a", 1, 1.0)
    assert policy.count("a") == pytest.approx(1.0)
    policy.insert("b", 1, 1.0)
    for _ in range(9):
        policy.hit("b")
    # ten requests later a's one request counts half
    assert policy.count("a") == pytest.approx(0.5)


def test_aging_lets_an_old_favourite_leave() -> None:
    def run(half_life: int) -> set[str]:
        budget = Budget(LFUPolicy(half_life=half_life), max_entries=2)
        trace = [TraceRequest("old", 1)] * 100
        trace += [TraceRequest(k, 1) for _ in range(50) for k in ("new1", "new2")]
        replay(trace, budget)
        return set(budget.sizes)

    assert run(half_life=10) == {"new1", "new2"}
    assert "old" in run(half_life=10**9)  # plain LFU: 100 old requests beat 50 new ones


def test_forgets_history_that_decayed_away() -> None:
    policy = LFUPolicy(half_life=4)
    policy.insert("gone", 1, 1.0)
    policy.remove("gone", evicted=True)
    assert policy.count("gone") > 0
    policy.insert("other", 1, 1.0)
    for _ in range(40):
        policy.hit("other")
    assert policy.count("gone") == 0.0  # dropped from the history


def test_picked_by_name() -> None:
    assert isinstance(make_policy("lfu"), LFUPolicy)
