"""LRU: the entry not asked for the longest leaves first; count or byte budget."""

from __future__ import annotations

from serval.models.eviction import Budget, LRUPolicy, TraceRequest, replay


def test_least_recently_used_leaves_first() -> None:
    policy = LRUPolicy()
    for key in ("a", "b", "c"):
        policy.insert(key, 1, 1.0)
    policy.hit("a")
    assert policy.victim() == "b"
    assert policy.victim(skip={"b"}) == "c"
    policy.remove("b", evicted=True)
    policy.remove("missing")  # ignored
    assert len(policy) == 2 and "b" not in policy
    assert policy.victim(skip={"a", "c"}) is None


def test_ignores_size_and_cost() -> None:
    policy = LRUPolicy()
    policy.insert("slow-small", 1, 100.0)
    policy.insert("fast-big", 10**9, 0.1)
    assert policy.victim() == "slow-small"


def test_count_budget_is_ray_serves_behaviour() -> None:
    budget = Budget(LRUPolicy(), max_entries=2)
    trace = [TraceRequest(k, 1) for k in ("a", "b", "a", "c", "b", "a")]
    result = replay(trace, budget)
    # a b (hit a) c evicts b; b evicts a; a evicts c.
    assert result.misses == 5
    assert set(budget.sizes) == {"a", "b"}


def test_byte_budget_evicts_as_many_as_it_takes() -> None:
    budget = Budget(LRUPolicy(), max_bytes=100)
    for key in ("a", "b", "c"):
        budget.admit(key, 30, 1.0)
    decision = budget.admit("big", 80, 1.0)
    assert decision.victims == ["a", "b", "c"]
    assert budget.bytes_used == 80
