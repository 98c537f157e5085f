"""kill -9 of the proxy and of a replica while requests keep coming."""

from __future__ import annotations

import asyncio
import os
import signal

import httpx
import psutil
import pytest
from starlette.requests import Request

import serval
from tests.faults._traffic import Traffic
from tests.faults.conftest import FaultRecord
from tests.utils import serval_children, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.slow]

THREADS = 4


@serval.deployment(num_replicas=2, graceful_shutdown_wait_loop_s=0.3)
class Who:
    async def __call__(self, request: Request) -> dict[str, int]:
        await asyncio.sleep(0.005)
        return {"pid": os.getpid()}


def _proxies() -> list[psutil.Process]:
    out = []
    for p in serval_children():
        try:
            if "serval.proxy" in " ".join(p.cmdline()) and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            pass
    return out


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_proxy_kill(serve: str, fault_report: FaultRecord) -> None:
    serval.run(Who.bind(), name="who", route_prefix="/who")
    (victim,) = _proxies()
    with Traffic(f"{serve}/who", threads=THREADS) as traffic:
        fault_report.add(traffic)
        traffic.wait_ok(100)
        fault_report.inject("kill -9 proxy")
        victim.send_signal(signal.SIGKILL)
        wait_for(
            lambda: [p.pid for p in _proxies()] not in ([], [victim.pid]) and _healthy(serve),
            timeout_s=60,
            what="a new proxy answering",
        )
        fault_report.recovered()
        after = len(traffic.ok)
        traffic.wait_ok(100)
    # Only the requests in flight in the killed proxy die with it: at most one per
    # client thread (each has one request out at a time), plus one per thread whose
    # kept-alive connection broke as it sent the next one.
    assert len(traffic.lost) <= 2 * THREADS, traffic.summary()
    # Nothing else fails: the listening socket outlives the proxy, so new connections
    # wait for the restarted one instead of being refused.
    assert traffic.failed == [], traffic.summary()
    late = [o for o in traffic.failed + traffic.lost if o.started > traffic.ok[after].ended]
    assert late == [], "requests still failing after the proxy came back"
    assert serval.status().proxies  # the controller knows its proxy again


def test_replica_kill(serve: str, fault_report: FaultRecord) -> None:
    serval.run(Who.bind(), name="who", route_prefix="/who")
    with Traffic(f"{serve}/who", threads=THREADS) as traffic:
        fault_report.add(traffic)
        traffic.wait_ok(100)
        victim = traffic.ok[-1].body["pid"]
        fault_report.inject("kill -9 replica")
        os.kill(victim, signal.SIGKILL)

        def replaced() -> bool:
            recent = {o.body["pid"] for o in traffic.ok[-40:]}
            return len(recent) == 2 and victim not in recent

        wait_for(replaced, timeout_s=60, what="a replacement replica serving")
        fault_report.recovered()
    # A request on the dead replica is retried on the other one: nothing fails.
    assert (len(traffic.failed), len(traffic.lost)) == (0, 0), traffic.summary()
    replicas = serval.status().applications["who"].deployments["Who"].replica_states
    assert replicas == {"RUNNING": 2}
