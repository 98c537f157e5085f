"""The offline figures: Belady's schedule and the PFOO-L lower bound bracket the optimum."""

from __future__ import annotations

from serval.models.eviction import Budget, GDSFPolicy, LFUPolicy, LRUPolicy, TraceRequest, replay
from serval.models.eviction.belady import belady_size, lower_bound, next_uses


def trace(keys: str, size: int = 1) -> list[TraceRequest]:
    return [TraceRequest(k, size) for k in keys]


def test_next_uses() -> None:
    assert next_uses(trace("abacb")) == [2, 4, 5, 5, 5]


def test_belady_is_min_with_equal_sizes() -> None:
    # Capacity 2: a b c a b — MIN keeps a and b and leaves c out: 3 misses.
    result = belady_size(trace("abcab"), capacity=2)
    assert (result.requests, result.misses, result.bytes_loaded) == (5, 3, 3)
    # The textbook example: 1 2 3 4 1 2 5 1 2 3 4 5 with 3 frames has 7 faults under MIN.
    textbook = [TraceRequest(str(k), 1) for k in (1, 2, 3, 4, 1, 2, 5, 1, 2, 3, 4, 5)]
    assert belady_size(textbook, capacity=3).misses == 7


def test_lower_bound_never_exceeds_a_real_schedule() -> None:
    import random

    rng = random.Random(3)
    sizes = {k: rng.randint(1, 20) for k in "abcdefghij"}
    requests = [rng.choice("aaabbbccdefghij") for _ in range(500)]
    t = [TraceRequest(k, sizes[k], cost=sizes[k] / 10) for k in requests]
    bound, belady = lower_bound(t, 40), belady_size(t, 40)
    assert bound.misses <= belady.misses
    assert bound.bytes_loaded <= belady.bytes_loaded
    for policy in (GDSFPolicy(), LFUPolicy(), LRUPolicy()):
        online = replay(t, Budget(policy, max_bytes=40))
        assert online.misses >= bound.misses
        assert online.bytes_loaded >= bound.bytes_loaded


def test_too_big_and_never_again_are_served_and_dropped() -> None:
    t = [TraceRequest("big", 100), TraceRequest("a", 1), TraceRequest("a", 1)]
    assert belady_size(t, capacity=10).misses == 2
    assert lower_bound(t, capacity=10).misses == 2
