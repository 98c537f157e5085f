"""Replica lifecycles through real processes: death, health, rolling updates, draining."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request

import serval
import serval as serve
from tests.utils import Load, wait_for

FAST_STOP = {"graceful_shutdown_wait_loop_s": 0.3, "graceful_shutdown_timeout_s": 5}


@serve.deployment(num_replicas=2, **FAST_STOP)
class Versioned:
    def __init__(self, version: str) -> None:
        self.version = version

    async def __call__(self, request: Request) -> dict:
        await asyncio.sleep(0.005)
        return {
            "version": self.version,
            "pid": os.getpid(),
            "replica": serve.get_replica_context().replica_id.unique_id,
        }


@serve.deployment(health_check_period_s=0.2, health_check_timeout_s=1, **FAST_STOP)
class Flaky:
    def __init__(self, flag_file: str) -> None:
        self.flag_file = flag_file

    def check_health(self) -> None:
        me = serve.get_replica_context().replica_id.unique_id
        if os.path.exists(self.flag_file):
            with open(self.flag_file) as f:
                if f.read() == me:
                    raise RuntimeError("model went bad")

    def __call__(self, request: Request) -> str:
        return serve.get_replica_context().replica_id.unique_id


@serve.deployment(**FAST_STOP)
async def sleeper(request: Request) -> str:
    started = request.query_params.get("started")
    if started:  # tells the test the request is in the replica
        with open(started, "w") as f:
            f.write("started")
    await asyncio.sleep(float(request.query_params["s"]))
    return "finished"


def test_killed_replica_is_replaced_while_requests_keep_succeeding(runtime_serve: str) -> None:
    serval.run(Versioned.bind("v1"), name="v", route_prefix="/v")
    with Load(f"{runtime_serve}/v") as load:
        wait_for(lambda: len(load.ok) > 50, what="traffic")
        victim = load.ok[-1]["pid"]
        os.kill(victim, signal.SIGKILL)
        wait_for(
            lambda: (
                any(r["pid"] != victim for r in load.ok[-20:])
                and len({r["pid"] for r in load.ok[-40:]}) == 2
                and victim not in {r["pid"] for r in load.ok[-40:]}
            ),
            what="a replacement replica serving",
        )
    assert load.failures == []
    assert serval.status().applications["v"].deployments["Versioned"].replica_states == {
        "RUNNING": 2
    }


def test_rolling_update_under_load_has_zero_failures(runtime_serve: str) -> None:
    serval.run(Versioned.bind("v1"), name="v", route_prefix="/v")
    with Load(f"{runtime_serve}/v") as load:
        wait_for(lambda: len(load.ok) > 50, what="traffic")
        serval.run(Versioned.bind("v2"), name="v", route_prefix="/v")  # new code → roll
        n = len(load.ok)
        wait_for(lambda: len(load.ok) > n + 50, what="traffic after the update")
    assert load.failures == []
    versions = [r["version"] for r in load.ok]
    assert versions[0] == "v1"
    assert set(versions[n:][-40:]) == {"v2"}
    first_v2 = versions.index("v2")
    assert "v2" in versions[first_v2:] and Counter(versions)["v1"] > 0


def _live_peak_during(run: Callable[[], None], app: str, name: str) -> int:
    """The most non-stopping replicas seen while ``run`` rolls ``app`` to new code."""
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            states = serval.status().applications[app].deployments[name].replica_states
            peak = max(peak, states.get("STARTING", 0) + states.get("RUNNING", 0))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        run()
    finally:
        done.set()
        sampler.join()
    return peak


@pytest.mark.parametrize(("surge", "most"), [(0, 4), (50, 6)])
def test_rollout_honours_rolling_update_percentage_and_max_surge(
    serve: str, surge: int, most: int
) -> None:
    """Ray Serve's rollout options: 25% at a time, within target + surge replicas."""
    rolling = Versioned.options(
        num_replicas=4, rolling_update_percentage=0.25, max_surge_percent=surge
    )
    serval.run(rolling.bind("v1"), name="r", route_prefix="/r")
    with Load(f"{serve}/r") as load:
        wait_for(lambda: len(load.ok) > 20, what="traffic")
        peak = _live_peak_during(
            lambda: serval.run(rolling.bind("v2"), name="r", route_prefix="/r"), "r", "Versioned"
        )
        n = len(load.ok)
        wait_for(lambda: len(load.ok) > n + 20, what="traffic after the update")
    assert load.failures == []
    assert 4 <= peak <= most, peak
    if surge:
        assert peak > 4, "with a surge allowance the new replicas start before old ones stop"
    assert {r["version"] for r in load.ok[-10:]} == {"v2"}


def test_unhealthy_replica_is_replaced(serve: str, tmp_path: object) -> None:
    flag = os.path.join(str(tmp_path), "bad")
    handle = serval.run(Flaky.bind(flag), name="f", route_prefix="/f")
    first = handle.remote(None).result()
    with open(flag, "w") as f:  # this replica (only) turns unhealthy
        f.write(first)
    wait_for(
        lambda: handle.remote(None).result() != first,
        timeout_s=20,
        what="a new replica after failed health checks",
    )
    assert serval.status().applications["f"].status == "RUNNING"


def test_delete_drains_in_flight_requests(serve: str, tmp_path: Path) -> None:
    serval.run(sleeper.bind(), name="s", route_prefix="/s")
    result: dict[str, httpx.Response] = {}
    started = tmp_path / "started"

    def call() -> None:
        params = {"s": "1.0", "started": str(started)}
        result["r"] = httpx.get(f"{serve}/s", params=params, timeout=30)

    t = threading.Thread(target=call)
    t.start()
    wait_for(started.exists, what="the request to reach the replica")
    serval.delete("s")  # waits until the replica drained
    t.join()
    assert result["r"].status_code == 200
    assert result["r"].text == "finished"
