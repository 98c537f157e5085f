"""Killing serval's Ray actors under HTTP load: the controller, then a replica."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx
import pytest
from starlette.requests import Request

import serval
from tests.utils import Load, wait_for

pytestmark = [pytest.mark.ray, pytest.mark.slow]

NAMESPACE = "serval-t"  # the Ray namespace of SERVAL_NAMESPACE=t (tests/conftest.py)


@serval.deployment(num_replicas=2, graceful_shutdown_wait_loop_s=0.3, graceful_shutdown_timeout_s=5)
class Who:
    def __init__(self) -> None:
        self.tag = ""
        self.reconfigured = 0

    def reconfigure(self, config: dict[str, Any] | None) -> None:
        self.tag = (config or {}).get("tag", "")
        self.reconfigured += 1

    async def __call__(self, request: Request) -> dict[str, Any]:
        await asyncio.sleep(float(request.query_params.get("s", "0.002")))
        return {
            "pid": os.getpid(),
            "replica": serval.get_replica_context().replica_id.unique_id,
            "tag": self.tag,
            "reconfigured": self.reconfigured,
        }


def _controller() -> Any:
    import ray

    return ray.get_actor("serval-controller", namespace=NAMESPACE)


def _controller_pid() -> int:
    import ray

    return int(ray.get(_controller().info.remote(), timeout=120)["pid"])


def test_killed_controller_restarts_and_adopts_replicas_under_load(ray_serve: str) -> None:
    import ray

    serval.run(Who.bind(), name="who", route_prefix="/who")
    serval.api.update_user_config("who", "Who", {"tag": "live"})  # saved in the spec
    first_pid = _controller_pid()
    with Load(f"{ray_serve}/who") as load:
        wait_for(lambda: len(load.ok) > 50, what="traffic")
        before = {(r["replica"], r["pid"], r["tag"], r["reconfigured"]) for r in load.ok}
        ray.kill(_controller(), no_restart=False)
        n = len(load.ok)
        # Ray restarts the actor; its new controller adopts the replicas.
        new_pid = wait_for(
            lambda: (pid := _controller_pid()) != first_pid and pid, timeout_s=90, what="restart"
        )
        wait_for(lambda: len(load.ok) > n + 200, timeout_s=60, what="traffic after the restart")
        status = wait_for(_status_or_none, timeout_s=30, what="the new controller to answer")
    assert new_pid != first_pid
    assert load.failures == [], load.failures[:5]
    after = {(r["replica"], r["pid"], r["tag"], r["reconfigured"]) for r in load.ok[n:]}
    # Same processes, same user_config, not even reconfigured again.
    assert after == before, "the replicas must be adopted, not restarted"
    assert {r["tag"] for r in load.ok[n:]} == {"live"}
    states = status.applications["who"].deployments["Who"].replica_states
    assert states == {"RUNNING": 2}
    # The adopted deployment is managed as before: scale it through the new controller.
    scaled = Who.options(num_replicas=3, user_config={"tag": "live"})
    serval.run(scaled.bind(), name="who", route_prefix="/who")
    states = serval.status().applications["who"].deployments["Who"].replica_states
    assert states == {"RUNNING": 3}
    with httpx.Client(timeout=30) as c:
        seen = {c.get(f"{ray_serve}/who").json()["pid"] for _ in range(60)}
    assert {pid for _, pid, _, _ in before} < seen, "the adopted replicas kept serving"


def _status_or_none() -> Any:
    try:
        return serval.status()
    except serval.exceptions.ServalError:
        return None


def test_killed_replica_actor_is_replaced_and_no_request_hangs(ray_serve: str) -> None:
    import ray

    serval.run(Who.bind(), name="who", route_prefix="/who")
    with Load(f"{ray_serve}/who?s=0.05", threads=8) as load:
        wait_for(lambda: len(load.ok) > 40, what="traffic")
        victim = load.ok[-1]["replica"]
        ray.kill(ray.get_actor(f"serval-replica-{victim}", namespace=NAMESPACE))
        n = len(load.ok)
        wait_for(
            lambda: (
                len(load.ok) > n + 40
                and len({r["replica"] for r in load.ok[-30:]}) == 2
                and victim not in {r["replica"] for r in load.ok[-30:]}
            ),
            timeout_s=60,
            what="a replacement replica serving",
        )
    # In-flight requests on the killed replica are retried on the other one (the router
    # sees the connection drop); any that could not be are clean 5xx answers, not hangs.
    assert all(f.startswith(("500", "503")) for f in load.failures), load.failures[:5]
    assert load.slowest_s < 10, f"a request took {load.slowest_s:.1f}s"
    status = serval.status().applications["who"].deployments["Who"]
    assert status.replica_states == {"RUNNING": 2}
