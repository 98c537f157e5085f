"""Overload: more clients than replicas and queue can take get 503 + Retry-After at
once; nothing hangs, and the accepted requests are all answered."""

from __future__ import annotations

import asyncio

import pytest
from starlette.requests import Request

import serval
from tests.faults._traffic import Traffic
from tests.faults.conftest import FaultRecord

pytestmark = [pytest.mark.faults, pytest.mark.slow]


@serval.deployment(max_ongoing_requests=1, max_queued_requests=2)
async def slow(request: Request) -> dict[str, str]:
    await asyncio.sleep(0.2)
    return {"ok": "yes"}


def test_overload(serve: str, fault_report: FaultRecord) -> None:
    serval.run(slow.bind(), name="slow", route_prefix="/slow")
    fault_report.inject("16 clients, 1 slot + 2 queued: 503 expected")
    # 16 clients, one request at a time each, against 1 slot and 2 queue places.
    with Traffic(f"{serve}/slow", threads=16, timeout_s=60) as traffic:
        fault_report.add(traffic)
        traffic.wait_ok(20)
        while len(traffic.failed) < 50:
            traffic.wait_ok(1)
    assert traffic.lost == [], traffic.summary()  # nothing hung, nothing broke
    for outcome in traffic.failed:
        assert outcome.status == 503, outcome.detail
        assert "max_queued_requests=2" in outcome.detail
        assert int(outcome.headers["retry-after"]) >= 1
