"""Autoscaling through real processes and real load (short delays configured)."""

from __future__ import annotations

import asyncio
import concurrent.futures

import httpx
import pytest
from starlette.requests import Request

import serval
from tests.utils import wait_for

AUTOSCALE = {
    "min_replicas": 0,
    "max_replicas": 3,
    "target_ongoing_requests": 1,
    "upscale_delay_s": 0.5,
    "downscale_delay_s": 2,
    "look_back_period_s": 1,
}


@serval.deployment(
    autoscaling_config=AUTOSCALE, max_ongoing_requests=2, graceful_shutdown_wait_loop_s=0.2
)
async def busy(request: Request) -> str:
    await asyncio.sleep(0.2)
    return "ok"


def replicas(app: str = "a") -> int:
    states = serval.status().applications[app].deployments["busy"].replica_states
    return states.get("RUNNING", 0)


@pytest.mark.slow
def test_scale_from_zero_up_and_back_down_without_failures(serve: str) -> None:
    serval.run(busy.bind(), name="a", route_prefix="/busy")
    assert replicas() == 0
    # From zero: the request waits in the proxy's queue while a replica starts.
    r = httpx.get(f"{serve}/busy", timeout=60)
    assert r.status_code == 200 and r.text == "ok", r.text

    def hammer(n: int) -> list[int]:
        with httpx.Client(timeout=60) as c:
            return [c.get(f"{serve}/busy").status_code for _ in range(n)]

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(hammer, 25) for _ in range(6)]
        wait_for(lambda: replicas() >= 3, timeout_s=30, what="scale up to 3 replicas")
        codes = [c for f in futures for c in f.result()]
    assert codes == [200] * len(codes)
    wait_for(lambda: replicas() == 0, timeout_s=30, what="scale back down to zero")
    # and up again, still without a failed request
    assert httpx.get(f"{serve}/busy", timeout=60).status_code == 200
