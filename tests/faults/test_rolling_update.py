"""A rolling update (new code redeployed) under load: no request fails."""

from __future__ import annotations

import asyncio

import pytest
from starlette.requests import Request

import serval
from tests.faults._traffic import Traffic
from tests.faults.conftest import FaultRecord

pytestmark = [pytest.mark.faults, pytest.mark.slow]


@serval.deployment(num_replicas=2, graceful_shutdown_wait_loop_s=0.3)
class Versioned:
    def __init__(self, version: str) -> None:
        self.version = version

    async def __call__(self, request: Request) -> dict[str, str]:
        await asyncio.sleep(0.005)
        return {"version": self.version}


def test_rolling_update(serve: str, fault_report: FaultRecord) -> None:
    serval.run(Versioned.bind("v1"), name="v", route_prefix="/v")
    with Traffic(f"{serve}/v", threads=4) as traffic:
        fault_report.add(traffic)
        traffic.wait_ok(100)
        fault_report.inject("rolling update v1 -> v2")
        serval.run(Versioned.bind("v2"), name="v", route_prefix="/v")  # returns when rolled

        def only_v2() -> bool:
            return {o.body["version"] for o in traffic.ok[-40:]} == {"v2"}

        while not only_v2():
            traffic.wait_ok(10)
        fault_report.recovered()
        traffic.wait_ok(50)
    assert (len(traffic.failed), len(traffic.lost)) == (0, 0), traffic.summary()
    versions = [o.body["version"] for o in traffic.ok]
    assert versions[0] == "v1" and versions[-1] == "v2"
