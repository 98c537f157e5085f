"""The online limits: the knapsack of true popularity, replayed phase by phase."""

from __future__ import annotations

import itertools
import random

import pytest

from serval.models.eviction import TraceRequest
from serval.models.eviction.oracle import Phase, best_set, popularity_oracle


def test_best_set_is_the_knapsack_not_the_most_popular_first() -> None:
    probabilities = {"a": 0.5, "b": 0.3, "c": 0.25}
    assert best_set(probabilities, {"a": 6, "b": 5, "c": 5}, budget=10) == {"b", "c"}
    assert best_set(probabilities, {"a": 5, "b": 5, "c": 5}, budget=10) == {"a", "b"}


@pytest.mark.parametrize("seed", range(5))
def test_best_set_matches_brute_force_on_small_instances(seed: int) -> None:
    rng = random.Random(seed)
    keys = [f"k{i}" for i in range(9)]
    probabilities = {k: rng.random() for k in keys}
    sizes = {k: rng.randint(1, 40) for k in keys}
    budget = 60  # below the resolution: units are single bytes, the DP is exact
    best = max(
        (
            set(combo)
            for n in range(len(keys) + 1)
            for combo in itertools.combinations(keys, n)
            if sum(sizes[k] for k in combo) <= budget
        ),
        key=lambda chosen: sum(probabilities[k] for k in chosen),
    )
    chosen = best_set(probabilities, sizes, budget)
    assert sum(sizes[k] for k in chosen) <= budget
    assert sum(probabilities[k] for k in chosen) == pytest.approx(
        sum(probabilities[k] for k in best)
    )


def test_rounded_sizes_never_overflow_the_budget() -> None:
    rng = random.Random(3)
    sizes = {f"k{i}": rng.randint(1_000_000, 100_000_000) for i in range(500)}
    probabilities = {k: rng.random() for k in sizes}
    chosen = best_set(probabilities, sizes, budget=2_000_000_000, resolution=100)
    assert 0 < sum(sizes[k] for k in chosen) <= 2_000_000_000


def test_kept_models_load_once_and_the_rest_every_time() -> None:
    trace = [TraceRequest(k, size=10) for k in "aabacaab"]
    phase = Phase(0, {"a": 0.6, "b": 0.3, "c": 0.1}, {"a": 10, "b": 10, "c": 10})
    result = popularity_oracle(trace, [phase], budget=10)  # room for "a" only
    assert result.requests == 8
    assert result.misses == 1 + 2 + 1  # "a" once, both "b", the "c"
    assert result.bytes_loaded == 40


def test_window_oracle_switches_its_set_when_the_distribution_does() -> None:
    sizes = {"a": 10, "b": 10}
    trace = [TraceRequest(k, size=10) for k in "aaaabbbba"]
    phases = [Phase(0, {"a": 0.9, "b": 0.1}, sizes), Phase(4, {"a": 0.1, "b": 0.9}, sizes)]
    assert popularity_oracle(trace, phases, budget=10).misses == 1 + 1 + 1  # a, b, a again
    static = Phase(0, {"a": 0.5, "b": 0.4}, sizes)
    assert popularity_oracle(trace, [static], budget=10).misses == 1 + 4


def test_phases_must_start_at_the_first_request() -> None:
    with pytest.raises(ValueError, match="request 0"):
        popularity_oracle([TraceRequest("a", 1)], [Phase(1, {"a": 1.0}, {"a": 1})], budget=1)
