"""The serval side of benchmarks/many_models.py.

``defaults``: exactly the Ray Serve user's code (benchmarks/peers/ray_many_models.py),
``@serval.multiplexed(max_num_models_per_replica=N)`` and nothing else. ``tuned``: the
same with ``max_concurrent_loads=32``, the knob earlier figures were taken with (loads
are bounded by memory by default now, so it should change little); shown beside it,
labelled.
"""

from __future__ import annotations

from typing import Any

import serval
from benchmarks._mm_common import load_tenant, score, warm_up

TUNED = {"max_concurrent_loads": 32}


def make_app(
    registry: str, capacity: int, latency_s: float, loads_file: str, *, tuned: bool = False
) -> Any:
    options: dict[str, Any] = TUNED if tuned else {}

    @serval.deployment(num_replicas=2, max_ongoing_requests=32)
    class Scorer:
        def __init__(self) -> None:
            warm_up()

        @serval.multiplexed(max_num_models_per_replica=capacity, **options)
        async def get_model(self, model_id: str) -> Any:
            return await load_tenant(registry, model_id, latency_s, loads_file)

        async def __call__(self, request: Any) -> list[int]:
            return score(await self.get_model(serval.get_multiplexed_model_id()))

    return Scorer.bind()  # type: ignore[attr-defined]
