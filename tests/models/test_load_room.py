"""Loads bounded by memory, not by a small fixed count: I/O-bound loads overlap, a burst
of distinct cold 100 MB models never holds more than the budget (resident plus loading),
loads that learn their size mid-way wait for room, a full load queue answers
BackPressureError (503 + Retry-After), and CPU-bound deserialization runs at most one
per core."""

from __future__ import annotations

import asyncio
import os
import weakref
from typing import Any

import numpy as np
import pytest

from serval.exceptions import BackPressureError, ModelLoadError, http_status_for
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
    # ...and never held more than the budget: room is made before a load, not after.
    assert loader.most_alive <= budget
    stats = models.stats()
    assert stats.bytes_used <= budget and stats.bytes_peak <= budget and stats.loads == 16


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
    asked: list[tuple[int, bool]] = []

    def room(reserved: int, ticket: Ticket, size: int, alone: bool) -> bool:
        asked.append((reserved, alone))
        return resident + reserved <= budget

    slots = LoadSlots(None, room=room)
    tickets = [Ticket(live=True, nbytes=4) for _ in range(3)]
    first, second = tickets[0], tickets[1]
    await slots.acquire(first)
    await slots.acquire(second)
    assert slots.reserved == 8
    third = asyncio.ensure_future(slots.acquire(tickets[2]))
    await asyncio.sleep(0.01)
    assert not third.done() and asked[-1] == (12, False)  # 12 > 10: waits
    slots.release(first)
    await third
    assert slots.reserved == 8 and slots.running == 2
    unknown = Ticket(live=True, nbytes=None)
    waiting = asyncio.ensure_future(slots.acquire(unknown))
    await asyncio.sleep(0.01)
    assert not waiting.done()  # a load of unknown size runs alone
    slots.release(second)
    slots.release(tickets[2])
    await waiting
    assert slots.running == 1 and slots.reserved == 0


async def test_the_cache_is_asked_to_make_room_when_nothing_else_loads() -> None:
    asked: list[bool] = []

    def room(reserved: int, ticket: Ticket, size: int, alone: bool) -> bool:
        asked.append(alone)
        return alone  # the cache makes room only for a load alone

    slots = LoadSlots(None, room=room)
    first = Ticket(live=True, nbytes=4)
    await slots.acquire(first)
    assert asked == [True]
    second = asyncio.ensure_future(slots.acquire(Ticket(live=True, nbytes=4)))
    await asyncio.sleep(0.01)
    assert not second.done() and asked == [True, False]
    slots.release(first)
    await second
    assert asked[-1] is True


async def test_a_load_grows_its_reservation_when_it_learns_its_size() -> None:
    budget = 10

    def room(reserved: int, ticket: Ticket, size: int, alone: bool) -> bool:
        return reserved <= budget or alone

    slots = LoadSlots(None, room=room)
    a, b = Ticket(live=True, nbytes=2), Ticket(live=True, nbytes=2)
    await slots.acquire(a)
    await slots.acquire(b)
    await slots.grow(a, 6)  # 6 + 2 fits
    assert (slots.reserved, a.nbytes) == (8, 6)
    grow_b = asyncio.ensure_future(slots.grow(b, 7))  # 6 + 7 > 10: waits for a
    await asyncio.sleep(0.01)
    assert not grow_b.done() and slots.reserved == 8
    slots.release(a)
    await grow_b
    assert (slots.reserved, b.nbytes) == (7, 7)


async def test_loads_that_all_wait_to_grow_do_not_deadlock() -> None:
    def room(reserved: int, ticket: Ticket, size: int, alone: bool) -> bool:
        return reserved <= 10 or alone

    slots = LoadSlots(None, room=room)
    a, b = Ticket(live=True, nbytes=5), Ticket(live=True, nbytes=5)
    await slots.acquire(a)
    await slots.acquire(b)
    grow_a = asyncio.ensure_future(slots.grow(a, 8))
    await asyncio.sleep(0.01)
    assert not grow_a.done()  # b may end and make room: a waits
    await asyncio.wait_for(slots.grow(b, 8), 1)  # now both wait: one goes on, alone
    slots.release(b)
    await asyncio.wait_for(grow_a, 1)
    assert slots.reserved == 8


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


async def test_a_load_makes_room_for_its_file_before_the_model_is_built() -> None:
    """A loader that says how big the file it deserializes is (the model store does)
    gets that room before it builds the model: resident plus loading bytes stay in
    the budget even for a model larger than any loaded before."""
    from serval.models._served import expect

    budget = 1_000
    sizes = {"a": 300, "b": 300, "big": 420}
    seen: list[int] = []

    async def load(model_id: str) -> Any:
        await expect(sizes[model_id])  # reserves twice that: file and model at once
        stats = models.stats()
        seen.append(stats.bytes_used + stats.bytes_loading)
        return model_id

    models = ModelCache(
        load, CacheConfig(max_models=None, max_bytes=budget), sizer=lambda m: sizes[m]
    )
    await models.get("a")
    await models.get("b")
    assert models.stats().bytes_used == 600
    assert await models.get("big") == "big"  # needs 840 while it loads: a and b leave
    assert all(total <= budget for total in seen), seen
    assert seen[-1] == 840 and models.stats().bytes_peak <= budget
    assert models.loaded_model_ids() == ["big"]


async def test_a_file_larger_than_the_budget_is_refused_before_it_is_deserialized(
    tmp_path: Any,
) -> None:
    from serval.models.registry.directory import DirectoryRegistry
    from serval.models.store import ModelStore

    version = tmp_path / "huge" / "1"
    version.mkdir(parents=True)
    (version / "model.bin").write_bytes(b"x" * 5_000)
    built: list[str] = []

    def deserialize(artifact: Any) -> bytes:
        built.append(artifact.ref.name)
        return bytes(artifact.data)

    store = ModelStore(DirectoryRegistry(str(tmp_path)), loader=deserialize)
    models = ModelCache(store.load, CacheConfig(max_bytes=1_000, load_retries=2))
    with pytest.raises(ModelLoadError) as caught:
        await models.get("huge")
    assert "its file takes" in caught.value.cause and "(5000 bytes)" in caught.value.cause
    assert "max_bytes=1000 B" in caught.value.cause
    with pytest.raises(ModelLoadError) as caught:
        await models.get("huge")
    assert "(5000 bytes)" in caught.value.cause and "max_bytes=1000 B" in caught.value.cause
    assert built == []  # refused before anything was built, and not retried
    assert store.stats()[1].loads == 1  # the size is remembered: not fetched again
