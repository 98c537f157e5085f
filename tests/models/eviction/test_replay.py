"""Replaying a trace counts what a tier would have had to load."""

from __future__ import annotations

import pytest

from serval.models.eviction import Budget, LRUPolicy, ReplayResult, TraceRequest, replay


def test_counts_misses_bytes_and_load_time() -> None:
    trace = [TraceRequest("a", 10, 1.5), TraceRequest("a", 10, 1.5), TraceRequest("b", 5, 0.5)]
    result = replay(trace, Budget(LRUPolicy(), max_bytes=100))
    assert result == ReplayResult(requests=3, misses=2, bytes_loaded=15, load_s=2.0)
    assert result.miss_ratio == pytest.approx(2 / 3)
    assert ReplayResult(0, 0, 0, 0.0).miss_ratio == 0.0


def test_a_model_that_is_not_kept_still_counts_as_loaded() -> None:
    trace = [TraceRequest("huge", 1_000)] * 3
    result = replay(trace, Budget(LRUPolicy(), max_bytes=100))
    assert result.misses == 3 and result.bytes_loaded == 3_000


def test_loads_in_budget_make_room_before_the_load() -> None:
    # 60 + 60 does not fit in 100: the second load makes room for itself first (the
    # first is evicted ahead), then the first comes back and makes room again.
    trace = [TraceRequest("a", 60), TraceRequest("b", 60), TraceRequest("a", 60)]
    result = replay(trace, Budget(LRUPolicy(), max_bytes=100), loads_in_budget=True)
    assert result.misses == 3
    # Small models that all fit: the budget's room for loads changes nothing.
    small = [TraceRequest(k, 10) for k in "abcabc"]
    assert replay(small, Budget(LRUPolicy(), max_bytes=100), loads_in_budget=True).misses == 3
