"""The one algorithm that makes room: count and byte limits, pins, policy and filter."""

from __future__ import annotations

import pytest

from serval.exceptions import ConfigError
from serval.models.eviction import Budget, GDSFPolicy, LRUPolicy, make_policy


def lru_budget(**limits: int | None) -> Budget:
    return Budget(LRUPolicy(), **limits)


def test_count_limit() -> None:
    budget = lru_budget(max_entries=2)
    assert budget.admit("a", 10, 1.0).victims == []
    assert budget.admit("b", 10, 1.0).victims == []
    assert budget.admit("c", 10, 1.0).victims == ["a"]
    assert set(budget.sizes) == {"b", "c"} and len(budget) == 2 and "a" not in budget


def test_byte_limit_and_too_big() -> None:
    budget = lru_budget(max_bytes=100)
    budget.admit("a", 60, 1.0)
    assert budget.admit("b", 50, 1.0).victims == ["a"]
    decision = budget.admit("huge", 101, 1.0)
    assert not decision.admitted and "exceed max_bytes=100" in decision.reason
    assert budget.bytes_used == 50


def test_protected_entries_are_never_victims() -> None:
    budget = lru_budget(max_entries=2)
    budget.admit("pinned", 1, 1.0)
    budget.admit("b", 1, 1.0)
    assert budget.admit("c", 1, 1.0, protected={"pinned"}).victims == ["b"]
    decision = budget.admit("d", 1, 1.0, protected={"pinned", "c"})
    assert not decision.admitted and "pinned" in decision.reason
    assert set(budget.sizes) == {"pinned", "c"}


def test_force_goes_over_the_limits_when_everything_is_pinned() -> None:
    budget = lru_budget(max_entries=1)
    budget.admit("a", 1, 1.0)
    decision = budget.admit("b", 1, 1.0, protected={"a"}, force=True)
    assert decision.admitted and decision.victims == []
    assert len(budget) == 2


def test_admit_twice_is_an_error_remove_and_adopt() -> None:
    budget = lru_budget(max_bytes=100)
    budget.admit("a", 10, 1.0)
    with pytest.raises(ValueError, match="already in the budget"):
        budget.admit("a", 10, 1.0)
    budget.adopt("a", 30, 1.0)  # another process replaced it: size updated, not doubled
    assert budget.bytes_used == 30
    assert budget.remove("a") and not budget.remove("a")
    assert budget.bytes_used == 0


def test_over_budget_after_others_added_entries() -> None:
    budget = lru_budget(max_bytes=100)
    for key in ("a", "b", "c"):
        budget.adopt(key, 40, 1.0)
    assert budget.over_budget() == ["a"]
    assert budget.bytes_used == 80


def test_a_rejected_newcomer_changes_nothing() -> None:
    budget = Budget(GDSFPolicy(), max_entries=1)
    budget.admit("rare", 1, 1.0)
    budget.admit("hot", 1, 1.0)
    for _ in range(5):
        budget.hit("hot")
    assert not budget.admit("rare", 1, 1.0).admitted
    assert set(budget.sizes) == {"hot"} and "hot" in budget.policy


def test_policies_by_name_and_by_path() -> None:
    assert isinstance(make_policy("lru"), LRUPolicy)
    assert isinstance(make_policy("serval.models.eviction.lru:LRUPolicy"), LRUPolicy)
    with pytest.raises(ConfigError, match=r"invalid policy 'fifo': one of \['gdsf', 'lfu'"):
        make_policy("fifo")
    with pytest.raises(ConfigError, match="not an EvictionPolicy"):
        make_policy("collections:OrderedDict")


def test_room_for_a_load_is_made_ahead_when_the_newcomer_is_worth_it() -> None:
    budget = lru_budget(max_bytes=100)
    budget.admit("a", 40, 1.0)
    budget.admit("b", 40, 1.0)
    room = budget.room_for_load("c", over=30, size=50, cost=1.0)  # 40 + 40 + 50 > 100
    assert room.go and room.keep and room.victims == ["a"]
    assert set(budget.sizes) == {"b"} and budget.bytes_used == 40
    assert budget.room_for_load("c", over=0, size=50, cost=1.0).victims == []  # fits


def test_room_for_a_load_not_worth_keeping_waits_unless_it_is_alone() -> None:
    budget = Budget(GDSFPolicy(), max_bytes=1)
    budget.admit("rare", 1, 1.0)
    budget.evict(["rare"])  # it leaves with its (small) count remembered
    budget.admit("hot", 1, 1.0)
    for _ in range(5):
        budget.hit("hot")
    room = budget.room_for_load("rare", over=1, size=1, cost=1.0, alone=False)
    assert not room.go and set(budget.sizes) == {"hot"}  # waits, nothing evicted
    room = budget.room_for_load("rare", over=1, size=1, cost=1.0, alone=True)
    assert room.go and not room.keep and room.victims == ["hot"]  # served, not kept
    budget.decline("rare")
    assert "rare" not in budget and budget.bytes_used == 0


def test_room_for_a_load_when_pins_fill_the_tier() -> None:
    budget = lru_budget(max_bytes=10)
    budget.admit("pinned", 10, 1.0)
    assert not budget.room_for_load("x", 5, 5, 1.0, {"pinned"}, alone=False).go
    room = budget.room_for_load("x", 5, 5, 1.0, {"pinned"}, alone=True)
    assert room.go and room.victims == [] and "pinned" in budget  # over the budget, alone
