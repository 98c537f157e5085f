"""The model store in real replica processes: a disk warm tier two replicas share, and
the HTTP answers for unknown and corrupt models."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from starlette.requests import Request

import serval
import serval.models
from tests.models import _data
from tests.utils import wait_for

HEADER = "serve_multiplexed_model_id"
ROWS = _data.iris()[0][:3].tolist()


@serval.deployment
class Scorer:
    def __init__(self, registry: str, warm: str) -> None:
        serval.models.configure(registry=registry, warm=warm)

    @serval.multiplexed(max_num_models_per_replica=4, load_retries=1)
    async def get_model(self, model_id: str) -> Any:
        return await serval.models.load(model_id)

    async def predict(self, rows: list[list[float]]) -> dict[str, Any]:
        model = await self.get_model(serval.get_multiplexed_model_id())
        prediction = model.predict(np.asarray(rows, dtype=np.float32)).tolist()
        return {"prediction": prediction, "pid": os.getpid()}

    async def __call__(self, request: Request) -> dict[str, Any]:
        return await self.predict((await request.json())["data"])


def counters(app: str) -> dict[str, Any]:
    (stats,) = serval.api.model_stats(app).values()  # one replica
    return stats


def test_two_replica_processes_share_the_disk_tier(
    serve: str, model_dir: Path, tmp_path: Path
) -> None:
    warm_dir = tmp_path / "warm"
    warm = f"disk:{warm_dir}"
    serval.run(Scorer.bind(str(model_dir), warm), name="one", route_prefix="/one")
    two = serval.run(Scorer.bind(str(model_dir), warm), name="two", route_prefix="/two")

    r = httpx.post(f"{serve}/one", json={"data": ROWS}, headers={HEADER: "iris@2"}, timeout=60)
    assert r.status_code == 200, r.text
    first = r.json()
    one = counters("one")
    assert (one["cold"]["loads"], one["warm"]["hits"], one["hot"]["loads"]) == (1, 0, 1)
    wait_for(lambda: list(warm_dir.glob("*.blob")), what="the warm-tier write")

    second = two.options(multiplexed_model_id="iris@2").predict.remote(ROWS).result()
    assert second["pid"] != first["pid"]  # another process...
    assert second["prediction"] == first["prediction"]
    other = counters("two")
    assert (other["warm"]["hits"], other["cold"]["loads"]) == (1, 0)  # ...read it from disk


def test_unknown_and_corrupt_models_over_http(serve: str, model_dir: Path, tmp_path: Path) -> None:
    serval.run(Scorer.bind(str(model_dir), f"disk:{tmp_path}"), name="s", route_prefix="/s")

    def score(model_id: str) -> httpx.Response:
        return httpx.post(f"{serve}/s", json={"data": ROWS}, headers={HEADER: model_id}, timeout=60)

    r = score("tenant404")
    assert r.status_code == 404 and "tenant404" in r.text, r.text
    for _ in range(2):
        r = score("corrupt")
        assert r.status_code == 500, r.text
        assert "model 'corrupt' failed to load" in r.text
        assert "does not load with load_joblib" in r.text and "(after 2 attempts)" in r.text
    stats = counters("s")
    # tenant404, then corrupt twice: not cached, the second request tried again
    assert stats["hot"]["load_failures"] == 3
    assert stats["cold"]["loads"] == 4  # two attempts each
    assert stats["hot"]["entries"] == 0
    assert score("iris").status_code == 200
