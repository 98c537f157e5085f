"""Real replica processes under a burst of 1,000 distinct cold model ids: every request
is answered (200, or 503 with Retry-After when a replica's load queue is full) and no
replica holds more model bytes than its budget allows; answers of a
``@serval.multiplexed`` deployment name the version that produced them."""

from __future__ import annotations

import asyncio
import os
import weakref
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from starlette.requests import Request

import serval
import serval.models

HEADER = "serve_multiplexed_model_id"
MB = 1_000_000
MODEL_BYTES = 2 * MB
BUDGET = 20 * MB


@serval.deployment(num_replicas=2, max_ongoing_requests=300)
class Burst:
    def __init__(self) -> None:
        self.alive = 0  # bytes of loaded arrays not yet freed, in this process
        self.most_alive = 0

    def _gone(self, nbytes: int) -> None:
        self.alive -= nbytes

    @serval.multiplexed(max_num_models_per_replica=-1, max_bytes=BUDGET, max_queued_loads=16)
    async def get_model(self, model_id: str) -> np.ndarray:
        await asyncio.sleep(0.02)  # the fetch: waits on I/O, holds nothing
        model = await asyncio.to_thread(np.ones, MODEL_BYTES, np.uint8)
        self.alive += model.nbytes
        self.most_alive = max(self.most_alive, self.alive)
        weakref.finalize(model, self._gone, model.nbytes)
        return model

    async def __call__(self, request: Request) -> dict[str, Any]:
        model = await self.get_model(serval.get_multiplexed_model_id())
        return {"bytes": int(model.nbytes)}

    def memory(self) -> dict[str, int]:
        return {"pid": os.getpid(), "most_alive": self.most_alive}


async def _burst(base: str, ids: list[str]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        return await asyncio.gather(*(client.post("/b", headers={HEADER: m}) for m in ids))


def test_a_thousand_distinct_cold_ids_at_once(serve: str) -> None:
    handle = serval.run(Burst.bind(), name="burst", route_prefix="/b")
    answers = asyncio.run(_burst(serve, [f"cold{i}" for i in range(1000)]))  # all at once
    codes = [r.status_code for r in answers]
    assert set(codes) <= {200, 503}, {
        c: r.text for c, r in zip(codes, answers, strict=True) if c not in (200, 503)
    }
    assert codes.count(200) > 0
    for r in answers:
        if r.status_code == 503:
            assert (
                int(r.headers["retry-after"]) >= 1 and "model loads are already waiting" in r.text
            )
        else:
            assert r.json() == {"bytes": MODEL_BYTES}
    replicas: dict[int, int] = {}
    for _ in range(40):
        seen = handle.memory.remote().result()
        replicas[seen["pid"]] = seen["most_alive"]
    print(f"codes: {codes.count(200)} x 200, {codes.count(503)} x 503; peak bytes {replicas}")
    # Bytes held never went past the budget by more than the one load a sequential
    # cache also holds before the policy picks what leaves.
    assert all(peak <= BUDGET + MODEL_BYTES for peak in replicas.values()), replicas
    stats = serval.api.model_stats("burst")
    assert all(s["hot"]["bytes_used"] <= BUDGET for s in stats.values()), stats


def test_multiplexed_answers_name_their_version(serve: str, model_dir: Path) -> None:
    from tests.models.test_serving import ROWS, Scorer

    serval.run(Scorer.bind(str(model_dir), "none"), name="v", route_prefix="/v")
    with httpx.Client(base_url=serve, timeout=60) as client:
        r = client.post("/v", json={"data": ROWS}, headers={HEADER: "iris@production"})
        assert r.status_code == 200, r.text
        assert r.headers["serval-model-version"] == "iris@1"
        assert r.headers["serval-model-alias"] == "production"
        r = client.post("/v", json={"data": ROWS}, headers={HEADER: "iris"})
        assert r.headers["serval-model-version"] == "iris@2"
        assert r.headers["serval-model-alias"] == "latest"
        r = client.post("/v", json={"data": ROWS}, headers={HEADER: "iris@1"})
        assert r.headers["serval-model-version"] == "iris@1"
        assert "serval-model-alias" not in r.headers
        r = client.post("/v", json={"data": ROWS}, headers={HEADER: "nope"})
        assert r.status_code == 404 and "'nope'" in r.text
        assert str(model_dir) not in r.text and "serval-model-version" not in r.headers
