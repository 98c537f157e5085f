"""Loads bounded by memory, not by a small fixed count: I/O-bound loads overlap, a burst
of distinct cold 100 MB models never holds more than the budget, a full load queue
answers BackPressureError (503 + Retry-After), and CPU-bound deserialization runs at
most one per core."""

from __future__ import annotations

import asyncio
import os
import weakref
from typing import Any

import numpy as np
import pytest

from serval.exceptions import BackPressureError, http_status_for
from serval.models import CacheConfig, ModelCache
from serval.models._slots import LoadSlots, Ticket

MB = 1_000_000


class Arrays:
    """A loader of numpy models that waits on "I/O" first and counts the bytes alive."""

    def __init__(self, nbytes: int, *, io_s: float = 0.0, gate: asyncio.Event | None = None):
        self.nbytes = nbytes
        self.io_s = io_s
        self.gate = gate
        self.running = 0
        self.most_running = 0
        self.alive = 0  # bytes of models not yet garbage
        self.most_alive = 0

    def _gone(self, nbytes: int) -> None:
        self.alive -= nbytes

    async def __call__(self, model_id: str) -> Any:
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            if self.gate is not None:
                await self.gate.wait()
            await asyncio.sleep(self.io_s)  # the fetch: waits, holds nothing
            model = await asyncio.to_thread(np.ones, self.nbytes, np.uint8)
            self.alive += model.nbytes
            self.most_alive = max(self.most_alive, self.alive)
            weakref.finalize(model, self._gone, model.nbytes)
            return model
        finally:
            self.running -= 1


async def test_io_bound_loads_overlap_without_a_fixed_cap() -> None:
    gate = asyncio.Event()
    loader = Arrays(1000, gate=gate)
    models = ModelCache(loader, CacheConfig(max_models=100))
    gate.set()
    await models.get("first")  # the first load runs alone: nothing measured yet
    gate.clear()
    waiters = [asyncio.ensure_future(models.get(f"m{i}")) for i in range(40)]
    while loader.running < 40:  # all forty wait on "I/O" at once (no cap of 2)
        await asyncio.sleep(0.01)
    gate.set()
    await asyncio.gather(*waiters)
    assert loader.most_running == 40 and len(models.loaded_model_ids()) == 41


async def test_a_burst_of_cold_100mb_models_stays_within_the_byte_budget() -> None:
    loader = Arrays(100 * MB, io_s=0.05)
    budget = 450 * MB  # four models and change
    models = ModelCache(loader, CacheConfig(max_models=None, max_bytes=budget))

    async def request(model_id: str) -> int:
        model = await models.get(model_id)
        return int(model.nbytes)  # the caller lets go of the model when it is done

    sizes = await asyncio.gather(*(request(f"tenant{i}") for i in range(16)))
    assert sizes == [100 * MB] * 16  # every request was answered
    assert loader.most_running >= 2  # loads did overlap while they fit...
    # ...and never held more than the budget, plus the one load a sequential cache
    # also holds while the policy has not yet chosen what leaves for it.
    assert loader.most_alive <= budget + 100 * MB
    assert models.stats().bytes_used <= budget and models.stats().loads == 16


async def test_a_full_load_queue_answers_503_with_retry_after() -> None:
    gate = asyncio.Event()
    models = ModelCache(Arrays(10, gate=gate), CacheConfig(max_queued_loads=2))
    running = asyncio.ensure_future(models.get("first"))  # nothing measured: runs alone
    queued = [asyncio.ensure_future(models.get(f"q{i}")) for i in range(2)]
    await asyncio.sleep(0.05)
    with pytest.raises(BackPressureError) as caught:
        await models.get("one-too-many")
    assert http_status_for(caught.value) == 503 and caught.value.retry_after_s > 0
    assert "model loads are already waiting" in str(caught.value)
    gate.set()
    await asyncio.gather(running, *queued)  # the queued ones still load
    assert "one-too-many" not in models
    await models.get("one-too-many")  # and a retry is served


async def test_loads_wait_for_room() -> None:
    budget = 10
    resident = 0

    def fits(reserved: int) -> bool:
        return resident + reserved <= budget

    slots = LoadSlots(None, fits=fits)
    tickets = [Ticket(live=True, nbytes=4) for _ in range(3)]
    first, second = tickets[0], tickets[1]
    await slots.acquire(first)
    await slots.acquire(second)
    assert slots.reserved == 8
    third = asyncio.ensure_future(slots.acquire(tickets[2]))
    await asyncio.sleep(0.01)
    assert not third.done()  # 12 > 10: waits
    slots.release(first)
    await third
    assert slots.reserved == 8 and slots.running == 2
    resident = 9
    slots.release(second)
    alone = Ticket(live=True, nbytes=4)
    waits = asyncio.ensure_future(slots.acquire(alone))
    await asyncio.sleep(0.01)
    assert not waits.done()  # 9 resident + 4 + 4 > 10: waits...
    slots.release(tickets[2])
    await waits  # ...and runs alone once nothing else loads
    assert slots.running == 1
    tickets[2] = alone
    unknown = Ticket(live=True, nbytes=None)
    waiting = asyncio.ensure_future(slots.acquire(unknown))
    await asyncio.sleep(0.01)
    assert not waiting.done()  # a load of unknown size runs alone
    slots.release(tickets[2])
    await waiting
    assert slots.running == 1


async def test_store_deserializes_at_most_one_model_per_core(tmp_path: Any) -> None:
    import threading

    from serval.models.registry import Artifact, ModelRef
    from serval.models.store import ModelStore

    lock = threading.Lock()
    state = {"now": 0, "most": 0}

    def slow_loader(artifact: Artifact) -> str:
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        threading.Event().wait(0.05)
        with lock:
            state["now"] -= 1
        return artifact.ref.name

    store = ModelStore(object(), None, loader=slow_loader)  # type: ignore[arg-type]
    artifacts = [
        Artifact(ModelRef(f"m{i}", "1"), "m.bin", b"x") for i in range(3 * (os.cpu_count() or 1))
    ]
    names = await asyncio.gather(*(store._deserialize(a.ref.name, a) for a in artifacts))
    assert names == [a.ref.name for a in artifacts]
    assert state["most"] == (os.cpu_count() or 1)
