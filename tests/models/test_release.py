"""Letting go of evicted models: unload hooks, and memory that really comes back."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import textwrap
import warnings
from typing import Any

from serval.models._release import Reclaimer, release

MB = 1024**2


async def wait_until(predicate: Any, what: str, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class Calls:
    def __init__(self) -> None:
        self.trims: list[bool] = []

    def __call__(self, *, trim: bool) -> None:
        self.trims.append(trim)


async def test_reclaims_at_once_then_at_most_once_per_interval() -> None:
    calls = Calls()
    reclaimer = Reclaimer(interval_s=0.5, trim_bytes=0, reclaim=calls)
    reclaimer.request(10 * MB)
    await asyncio.sleep(0)
    assert calls.trims == [True]  # the first eviction: right after the current callbacks
    for _ in range(100):  # steady evictions: no run per request...
        reclaimer.request(MB)
        await asyncio.sleep(0)
    assert reclaimer.runs == 1
    # ...but after the last one, a run when the interval allows and a follow-up run.
    await wait_until(lambda: reclaimer.runs == 3, "the trailing runs")
    await asyncio.sleep(1.0)
    assert reclaimer.runs == 3  # nothing more was asked for


async def test_trims_only_once_enough_bytes_were_freed() -> None:
    calls = Calls()
    reclaimer = Reclaimer(interval_s=0.01, trim_bytes=50 * MB, reclaim=calls)
    for freed in (20 * MB, 20 * MB, 20 * MB, 5 * MB):
        reclaimer.request(freed)
        runs = reclaimer.runs
        await wait_until(lambda: reclaimer.runs == runs + 2, "two runs")  # noqa: B023
    # Each request: a run and its follow-up. 20, 40 MB: no trim; 60 MB: trim, twice.
    assert calls.trims == [False, False, False, False, True, True, False, False]


async def test_cancel_drops_a_pending_run() -> None:
    calls = Calls()
    reclaimer = Reclaimer(interval_s=60, reclaim=calls)
    reclaimer.request(MB)
    reclaimer.cancel()
    await asyncio.sleep(0.01)
    assert calls.trims == []


async def test_release_calls_close_or_async_del_once() -> None:
    events: list[str] = []

    class WithAsyncDel:
        async def __del__(self) -> None:
            events.append("async __del__")

    class WithAsyncClose:
        async def close(self) -> None:
            events.append("async close")

    class Plain:
        def __del__(self) -> None:
            events.append("plain __del__")

    model: Any = WithAsyncDel()
    await release("a", model)
    assert events == ["async __del__"] and isinstance(model, WithAsyncDel)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no coroutine left unawaited at collection
        del model
        gc.collect()
    await release("b", WithAsyncClose())
    plain: Any = Plain()
    await release("c", plain)  # a plain __del__ runs by itself, later
    assert events == ["async __del__", "async close"]
    del plain
    assert events[-1] == "plain __del__"
    await release("d", WithAsyncClose)  # a class is not closed
    assert events.count("async close") == 1


_RSS_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    import numpy as np
    import psutil
    from serval.models import ModelCache

    MB = 1024 ** 2
    proc = psutil.Process()

    class Model:
        # Many 64 KiB arrays land on the malloc heap of the loading thread (not in
        # mmaps of their own), and the cycle means only the collector frees them: both
        # must be dealt with for the memory to leave the process.
        def __init__(self, mb):
            self.chunks = [np.ones(64 * 1024 // 8) for _ in range(mb * 16)]
            self.me = self

    async def load(model_id):
        return await asyncio.to_thread(Model, 200)

    async def settle(baseline, deadline):
        while proc.memory_info().rss - baseline > 60 * MB:
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.05)
        return proc.memory_info().rss

    async def main():
        cache = ModelCache(load, {"max_models": 1})
        baseline = proc.memory_info().rss
        out = {"baseline": baseline, "loaded": [], "after": []}
        for name in ("a", "b"):  # two evictions within a second: the trailing run
            await cache.get(name)
            out["loaded"].append(proc.memory_info().rss)
            await cache.evict(name)
            deadline = asyncio.get_running_loop().time() + 20
            out["after"].append(await settle(baseline, deadline))
        out["runs"] = cache._resident.reclaimer.runs
        print(json.dumps(out))

    asyncio.run(main())
    """
)


def test_memory_comes_back_after_eviction() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    for loaded, after in zip(out["loaded"], out["after"], strict=True):
        grew = loaded - out["baseline"]
        assert grew > 180 * MB, out  # the model really took its 200 MB
        assert after - out["baseline"] < 0.3 * grew, out  # and most of it came back
    assert out["runs"] >= 2, out
