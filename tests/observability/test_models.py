"""Many-models metrics on a real multiplexed deployment: exact loads, hits, misses and
evictions after a known sequence, and per-model series only for the top N models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from starlette.requests import Request

import serval
import serval.models
from tests.models import _data
from tests.observability._scrape import scrape

HEADER = "serve_multiplexed_model_id"
ROWS = _data.iris()[0][:2].tolist()
TENANTS = ("t_a", "t_b", "t_c")


@serval.deployment
class Scorer:
    def __init__(self, registry: str, warm: str) -> None:
        serval.models.configure(registry=registry, warm=warm)

    @serval.multiplexed(max_num_models_per_replica=2, policy="lru")  # a known victim
    async def get_model(self, model_id: str) -> Any:
        return await serval.models.load(model_id)

    async def __call__(self, request: Request) -> list[int]:
        model = await self.get_model(serval.get_multiplexed_model_id())
        rows = np.asarray((await request.json())["data"], dtype=np.float32)
        return [int(x) for x in model.predict(rows)]


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    root = tmp_path / "registry"
    blob = _data.joblib_bytes(_data.sklearn_model("logreg"))
    for tenant in TENANTS:
        (root / tenant / "1").mkdir(parents=True)
        (root / tenant / "1" / "model.joblib").write_bytes(blob)
    return root


@pytest.fixture
def top2(serval_home: str, http_port: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("SERVAL_METRICS_TOP_MODELS", "2")
    serval.start(http_options={"port": http_port})
    yield f"http://127.0.0.1:{http_port}"


def test_model_counts_and_top_n(top2: str, registry: Path, tmp_path: Path) -> None:
    serval.run(Scorer.bind(str(registry), f"disk:{tmp_path / 'warm'}"), name="mm", route_prefix="/")
    with httpx.Client(base_url=top2, timeout=60) as c:
        # a a a b b c with room for two models: 3 loads, 3 hits, 3 misses, t_a evicted
        for tenant in ("t_a", "t_a", "t_a", "t_b", "t_b", "t_c"):
            r = c.post("/", json={"data": ROWS}, headers={HEADER: tenant})
            assert r.status_code == 200, r.text
        assert c.post("/", json={"data": ROWS}, headers={HEADER: "nobody"}).status_code == 404

    m = scrape(top2)
    dep = {"application": "mm", "deployment": "Scorer"}
    hot = {"tier": "hot", **dep}
    assert m.value("serval_model_loads_total", outcome="success", **hot) == 3
    assert m.value("serval_model_loads_total", outcome="failure", **hot) == 1  # "nobody"
    assert m.value("serval_model_cache_hits_total", **hot) == 3
    assert m.value("serval_model_cache_misses_total", **hot) == 4
    assert m.value("serval_model_evictions_total", **hot) == 1
    assert m.value("serval_models_loaded", **dep) == 2
    assert m.value("serval_model_cache_bytes", tier="hot", **dep) > 0
    assert m.value("serval_model_loads_total", tier="cold", outcome="success", **dep) == 3
    assert m.value("serval_model_load_latency_seconds_count", tier="hot", **dep) == 3
    assert m.value("serval_model_load_latency_seconds_count", tier="cold", **dep) == 3
    assert m.value("serval_warm_tier_errors_total", **dep) == 0
    # top 2 by requests: t_a (3) and t_b (2); t_c and the unknown id are summed
    assert m.label_values("serval_model_requests_total", "model_id") == {
        "t_a",
        "t_b",
        "__other__",
    }
    assert m.value("serval_model_requests_total", model_id="t_a") == 3
    assert m.value("serval_model_cache_hits_total", model_id="t_a") == 2
    assert m.value("serval_model_evictions_total", model_id="t_a") == 1
    assert m.value("serval_model_resident_bytes", model_id="t_a") == 0
    assert m.value("serval_model_resident_bytes", model_id="t_b") > 0
    assert m.value("serval_model_requests_total", model_id="__other__") == 2
    assert m.value("serval_model_loads_total", model_id="__other__", outcome="success") == 1
    assert m.value("serval_model_requests_total") == 7
