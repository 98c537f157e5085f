"""A multiplexed deployment over a directory registry, for the store's fault tests."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import numpy as np
from starlette.requests import Request

import serval
import serval.models
from tests.models import _data

HEADER = "serve_multiplexed_model_id"
ROWS = _data.iris()[0][:3].tolist()


def make_registry(root: Path, names: list[str]) -> Path:
    """A directory registry holding ``names`` (each ``name@version``, a small model)."""
    model = _data.joblib_bytes(_data.sklearn_model("logreg"))
    for ref in names:
        name, version = ref.split("@")
        (root / name / version).mkdir(parents=True)
        (root / name / version / "model.joblib").write_bytes(model)
    return root


@serval.deployment(max_ongoing_requests=8)
class Scorer:
    def __init__(self, **store: Any) -> None:
        serval.models.configure(**store)

    # One model in memory at a time: alternating requests go through the warm tier.
    @serval.multiplexed(max_num_models_per_replica=1, load_retries=0)
    async def get_model(self, model_id: str) -> Any:
        return await serval.models.load(model_id)

    async def __call__(self, request: Request) -> dict[str, Any]:
        model = await self.get_model(serval.get_multiplexed_model_id())
        rows = np.asarray((await request.json())["data"], dtype=np.float32)
        return {"prediction": model.predict(rows).tolist(), "pid": os.getpid()}


def scoring(url: str, model_ids: list[str]) -> Any:
    """A Traffic ``request`` callable: POST rows for each model id in turn."""
    cycle = itertools.cycle(model_ids)

    def request(_i: int) -> tuple[str, str, dict[str, Any]]:
        return "POST", url, {"json": {"data": ROWS}, "headers": {HEADER: next(cycle)}}

    return request


def tier_stats(app: str) -> dict[str, Any]:
    (stats,) = serval.api.model_stats(app).values()  # one replica
    return stats
