"""GDSF: keeps what is asked for often, slow to load and small; lets old favourites go."""

from __future__ import annotations

import pytest

from serval.models.eviction import Budget, GDSFPolicy, TraceRequest, make_policy, replay

MB = 1_000_000


def test_keeps_the_cheap_to_keep_costly_to_load_model() -> None:
    policy = GDSFPolicy()
    policy.insert("small-slow", size=10 * MB, cost=20.0)
    policy.insert("big-fast", size=80 * MB, cost=0.5)
    policy.insert("small-fast", size=10 * MB, cost=0.5)
    policy.insert("big-slow", size=80 * MB, cost=20.0)
    # Equal popularity: the big model that reloads fast is worth least per byte.
    assert policy.victim() == "big-fast"
    order = []
    skip: set[str] = set()
    while (key := policy.victim(skip)) is not None:
        order.append(key)
        skip.add(key)
    # per MB: big-fast 1.05/80, big-slow 2.95/80, small-fast 1.05/10, small-slow 2.95/10
    assert order == ["big-fast", "big-slow", "small-fast", "small-slow"]


def test_hits_outweigh_size() -> None:
    policy = GDSFPolicy()
    policy.insert("big-hot", size=50 * MB, cost=1.0)
    policy.insert("small-cold", size=5 * MB, cost=1.0)
    assert policy.victim() == "big-hot"  # one request each: the big one goes
    for _ in range(20):
        policy.hit("big-hot")
    assert policy.victim() == "small-cold"  # 21 requests over 10x the bytes: worth more


def test_value_is_count_times_miss_cost_per_byte() -> None:
    policy = GDSFPolicy()
    policy.insert("a", size=MB, cost=2.0)
    policy.insert("b", size=MB, cost=4.0)
    assert policy.mean_cost == pytest.approx(3.0)
    # A miss costs the waiting request plus its load time in mean load times.
    assert policy.value(1.0, MB, 3.0) == pytest.approx(2.0)
    assert policy.value(2.0, 2 * MB, 6.0) == pytest.approx(3.0)


def test_a_shift_in_popularity_lets_yesterdays_hot_model_leave() -> None:
    # Budget for two models. "old" was hot, then nobody asks for it: with aging, two
    # newly popular models end up in the cache; without it "old" would stay forever.
    def run(half_life: int) -> set[str]:
        budget = Budget(GDSFPolicy(half_life=half_life), max_entries=2)
        trace = [TraceRequest("old", MB)] * 200
        trace += [TraceRequest(k, MB) for _ in range(60) for k in ("new1", "new2")]
        replay(trace, budget)
        return set(budget.sizes)

    assert run(half_life=20) == {"new1", "new2"}
    assert "old" in run(half_life=1_000_000)  # no aging to speak of: it squats


def test_counts_outlive_eviction() -> None:
    policy = GDSFPolicy()
    policy.insert("popular", size=MB, cost=1.0)
    for _ in range(9):
        policy.hit("popular")
    policy.remove("popular", evicted=True)
    assert "popular" not in policy
    assert policy.count("popular") == pytest.approx(10.0, rel=0.01)
    policy.insert("popular", size=MB, cost=1.0)  # back with its history, plus one
    assert policy.count("popular") == pytest.approx(11.0, rel=0.01)


def test_refuses_a_returning_model_worth_less_than_its_victims() -> None:
    policy = GDSFPolicy()
    budget = Budget(policy, max_entries=1)
    budget.admit("rare", MB, 1.0)
    assert budget.admit("hot", MB, 1.0).victims == ["rare"]  # a newcomer gets its chance
    for _ in range(10):
        budget.hit("hot")
    decision = budget.admit("rare", MB, 1.0)  # seen before, once: not worth "hot"
    assert not decision.admitted and "values the entries it would evict" in decision.reason
    assert set(budget.sizes) == {"hot"}


def test_picked_by_name_with_options() -> None:
    policy = make_policy("gdsf", half_life=50)
    assert isinstance(policy, GDSFPolicy) and policy.half_life == 50
    with pytest.raises(ValueError, match="half_life"):
        GDSFPolicy(half_life=0)


def test_skips_protected_and_survives_renormalizing() -> None:
    policy = GDSFPolicy(half_life=1)  # renormalizes every 256 requests
    policy.insert("a", MB, 1.0)
    policy.insert("b", MB, 1.0)
    for _ in range(1_000):
        policy.hit("a")
    assert policy.victim() == "b"
    assert policy.victim(skip={"b"}) == "a"
    assert policy.victim(skip={"a", "b"}) is None
    assert len(policy) == 2 and "a" in policy
