"""The registry unreachable (its directory moved away): models in memory are still
served, a model that must come from the registry gets a clear error naming it and the
cause, the failure is not cached, and loads work again once the registry is back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from starlette.requests import Request

import serval
import serval.models
from tests.faults._models import HEADER, ROWS, make_registry, scoring, tier_stats
from tests.faults._traffic import Traffic
from tests.faults.conftest import FaultRecord
from tests.utils import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.slow]


@serval.deployment
class HotScorer:
    def __init__(self, registry: str) -> None:
        serval.models.configure(registry=registry, warm="none")

    @serval.multiplexed(max_num_models_per_replica=4, load_retries=0)
    async def get_model(self, model_id: str) -> Any:
        return await serval.models.load(model_id)

    async def __call__(self, request: Request) -> dict[str, Any]:
        model = await self.get_model(serval.get_multiplexed_model_id())
        rows = np.asarray((await request.json())["data"], dtype=np.float32)
        return {"prediction": model.predict(rows).tolist()}


def test_registry_outage(serve: str, tmp_path: Path, fault_report: FaultRecord) -> None:
    registry = make_registry(tmp_path / "registry", ["hot@1", "cold@1"])
    serval.run(HotScorer.bind(str(registry)), name="s", route_prefix="/s")

    def score(model_id: str) -> httpx.Response:
        return httpx.post(f"{serve}/s", json={"data": ROWS}, headers={HEADER: model_id}, timeout=60)

    with Traffic(f"{serve}/s", threads=2, request=scoring(f"{serve}/s", ["hot@1"])) as traffic:
        fault_report.add(traffic)
        traffic.wait_ok(20)
        fault_report.inject("registry directory moved away")
        registry.rename(tmp_path / "moved")
        for _ in range(2):  # twice: the failure is not cached
            r = score("cold@1")
            assert r.status_code >= 500, r.text
            assert "cold@1" in r.text and "unreachable" in r.text, r.text
        traffic.wait_ok(40)  # the model in memory is still served
        (tmp_path / "moved").rename(registry)
        wait_for(lambda: score("cold@1").status_code == 200, timeout_s=60, what="cold@1 loading")
        fault_report.recovered()
        traffic.wait_ok(20)
    assert (len(traffic.failed), len(traffic.lost)) == (0, 0), traffic.summary()
    hot = tier_stats("s")["hot"]
    assert hot["load_failures"] == 2 and hot["entries"] == 2
