"""Handle calls, batching and autoscaling in the scrape: an ingress calls a batched,
autoscaled model through a handle."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
from starlette.requests import Request

import serval
from serval.handle import DeploymentHandle
from tests.observability._scrape import scrape

CALLS = 12


@serval.deployment(
    autoscaling_config={
        "min_replicas": 1,
        "max_replicas": 3,
        "target_ongoing_requests": 4,
        "upscale_delay_s": 60,
    },
    max_ongoing_requests=32,
)
class Model:
    @serval.batch(max_batch_size=4, batch_wait_timeout_s=0.05)
    async def predict(self, xs: list[int]) -> list[int]:
        return [x * 2 for x in xs]


@serval.deployment(max_ongoing_requests=32)
class Ingress:
    def __init__(self, model: DeploymentHandle) -> None:
        self.model = model

    async def __call__(self, request: Request) -> int:
        return int(await self.model.predict.remote(int(request.query_params["x"])))


def test_handle_calls_batches_and_autoscaling(serve: str) -> None:
    serval.run(Ingress.bind(Model.bind()), name="comp", route_prefix="/comp")

    def call(x: int) -> int:
        r = httpx.get(f"{serve}/comp", params={"x": x}, timeout=60)
        assert r.status_code == 200, r.text
        return int(r.text)

    with ThreadPoolExecutor(8) as pool:
        assert sorted(pool.map(call, range(CALLS))) == [2 * x for x in range(CALLS)]

    m = scrape(serve)
    model = {"application": "comp", "deployment": "Model"}
    assert m.value("serval_handle_requests_total", method="predict", **model) == CALLS
    # every call went through exactly one batch of at most 4
    assert m.value("serval_batch_size_sum", **model) == CALLS
    batches = m.value("serval_batch_size_count", **model)
    assert CALLS / 4 <= batches <= CALLS
    assert m.value("serval_batch_size_bucket", le="4.0", **model) == batches
    assert m.value("serval_autoscaling_target_ongoing_requests", **model) == 4
    assert m.value("serval_autoscaling_min_replicas", **model) == 1
    assert m.value("serval_autoscaling_max_replicas", **model) == 3
    assert m.value("serval_deployment_target_replicas", **model) >= 1
    assert m.labels_of("serval_autoscaling_ongoing_requests") != []
