"""The bounds the many-models benchmark prints: Belady's and the popularity oracle's."""

from __future__ import annotations

from collections import Counter

import pytest

from benchmarks import many_models


def test_zipf_draw_gives_the_trace_and_the_distribution_it_was_drawn_from() -> None:
    trace, popularity = many_models.zipf_draw(20_000, 200, 1.1, seed=4)
    assert trace == many_models.zipf_trace(20_000, 200, 1.1, seed=4)
    assert len(popularity) == 200 and sum(popularity.values()) == pytest.approx(1.0)
    counts = Counter(trace)
    top = max(popularity, key=lambda k: popularity[k])
    assert counts.most_common(1)[0][0] == top
    assert counts[top] / len(trace) == pytest.approx(popularity[top], rel=0.1)


def test_the_oracle_keeps_the_likeliest_and_sits_between_belady_and_lru() -> None:
    trace, popularity = many_models.zipf_draw(5_000, 200, 1.1, seed=5)
    capacity = 20
    kept = sorted(popularity, key=lambda k: -popularity[k])[:capacity]
    expected = len(set(trace) & set(kept)) + sum(1 for k in trace if k not in kept)
    oracle = many_models.oracle_loads(trace, popularity, capacity)
    assert oracle == expected
    assert many_models.belady_loads(trace, capacity) < oracle < _lru_loads(trace, capacity)


def _lru_loads(trace: list[str], capacity: int) -> int:
    cache: dict[str, None] = {}
    loads = 0
    for key in trace:
        if key in cache:
            cache[key] = cache.pop(key)
            continue
        loads += 1
        cache[key] = None
        if len(cache) > capacity:
            del cache[next(iter(cache))]
    return loads
