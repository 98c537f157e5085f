"""The serval side of benchmarks/many_models.py."""

from __future__ import annotations

from typing import Any

import serval
from benchmarks._mm_common import load_tenant, score, warm_up


def make_app(registry: str, capacity: int, latency_s: float, loads_file: str) -> Any:
    @serval.deployment(num_replicas=2, max_ongoing_requests=32)
    class Scorer:
        def __init__(self) -> None:
            warm_up()

        # Fetches wait on the registry (I/O): let as many overlap as Ray Serve does (it
        # does not limit loads; each request waits on its own, up to max_ongoing_requests).
        @serval.multiplexed(max_num_models_per_replica=capacity, max_concurrent_loads=32)
        async def get_model(self, model_id: str) -> Any:
            return await load_tenant(registry, model_id, latency_s, loads_file)

        async def __call__(self, request: Any) -> list[int]:
            return score(await self.get_model(serval.get_multiplexed_model_id()))

    return Scorer.bind()  # type: ignore[attr-defined]
