"""How loaded models are sized: the object-graph estimate, and where the cache runs it."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from serval.models import ModelCache
from serval.models.sizing import SizeWalk, estimate_nbytes, measure


class Holder:
    def __init__(self, **parts: Any) -> None:
        self.__dict__.update(parts)


def test_an_array_and_its_views_count_once() -> None:
    weights = np.zeros(100_000, dtype=np.float64)  # 800,000 bytes
    model = Holder(weights=weights, head=weights[:10], again=weights)
    size = estimate_nbytes(model)
    assert 800_000 <= size < 802_000


def test_a_scikit_learn_model_counts_its_fitted_arrays() -> None:
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(0).normal(size=(200, 300))
    model = LogisticRegression(max_iter=50).fit(x, (x[:, 0] > 0).astype(int))
    assert estimate_nbytes(model) >= model.coef_.nbytes


def test_the_walk_resumes_where_it_stopped() -> None:
    graph = [Holder(values=list(range(i, i + 50))) for i in range(400)]
    walk = SizeWalk(graph)
    steps = 0
    while not walk.step(100):
        steps += 1
    assert steps > 10  # the graph was walked in pieces...
    assert walk.total == estimate_nbytes(graph)  # ...to the same total as in one go


def test_a_sizer_or_the_models_own_hook_wins() -> None:
    class Gpu:
        def __serval_nbytes__(self) -> int:
            return 12_345

    assert measure(Gpu()) == 12_345
    assert measure(Gpu(), sizer=lambda m: 7) == 7


@pytest.mark.parametrize(("objects", "hops"), [(20, 0), (20_000, 1)])
async def test_the_cache_sizes_a_small_model_in_place_and_a_large_one_in_a_thread(
    monkeypatch: pytest.MonkeyPatch, objects: int, hops: int
) -> None:
    threads: list[Any] = []
    to_thread = asyncio.to_thread

    async def counting(func: Any, *args: Any) -> Any:
        threads.append(func)
        return await to_thread(func, *args)

    monkeypatch.setattr(asyncio, "to_thread", counting)

    async def load(model_id: str) -> Any:
        return Holder(parts=[str(i) for i in range(objects)])

    models = ModelCache(load, {"max_models": 4})
    model = await models.get("m")
    assert len(threads) == hops
    assert models.stats().bytes_used == estimate_nbytes(model)
