"""Real replica processes under bursts of distinct cold model ids — 1,000 small ones, and
120 MB ones loaded from a directory registry — : every request is answered (200, or 503
with Retry-After when a replica's load queue is full) and no replica holds more model
bytes than its budget, resident plus loading, by its own accounting, by the bytes of
the models alive in it and by its resident set size; answers of a
``@serval.multiplexed`` deployment name the version that produced them."""

from __future__ import annotations

import asyncio
import os
import pickle
import threading
import weakref
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from starlette.requests import Request

import serval
import serval.models

HEADER = "serve_multiplexed_model_id"
MB = 1_000_000
MODEL_BYTES = 2 * MB
BUDGET = 20 * MB


@serval.deployment(num_replicas=2, max_ongoing_requests=300)
class Burst:
    def __init__(self) -> None:
        self.alive = 0  # bytes of loaded arrays not yet freed, in this process
        self.most_alive = 0

    def _gone(self, nbytes: int) -> None:
        self.alive -= nbytes

    @serval.multiplexed(max_num_models_per_replica=-1, max_bytes=BUDGET, max_queued_loads=16)
    async def get_model(self, model_id: str) -> np.ndarray:
        await asyncio.sleep(0.02)  # the fetch: waits on I/O, holds nothing
        model = await asyncio.to_thread(np.ones, MODEL_BYTES, np.uint8)
        self.alive += model.nbytes
        self.most_alive = max(self.most_alive, self.alive)
        weakref.finalize(model, self._gone, model.nbytes)
        return model

    async def __call__(self, request: Request) -> dict[str, Any]:
        model = await self.get_model(serval.get_multiplexed_model_id())
        return {"bytes": int(model.nbytes)}

    def memory(self) -> dict[str, int]:
        return {"pid": os.getpid(), "most_alive": self.most_alive}


async def _burst(base: str, ids: list[str]) -> list[httpx.Response]:
    # keepalive_expiry under the proxy's 5 s keep-alive timeout: a client loop busy with
    # 1,000 requests can leave a connection idle long enough for the server to close it
    # just as the client reuses it ("Server disconnected without sending a response").
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256, keepalive_expiry=1.0)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        return await asyncio.gather(*(client.post("/b", headers={HEADER: m}) for m in ids))


def test_a_thousand_distinct_cold_ids_at_once(serve: str) -> None:
    handle = serval.run(Burst.bind(), name="burst", route_prefix="/b")
    answers = asyncio.run(_burst(serve, [f"cold{i}" for i in range(1000)]))  # all at once
    codes = [r.status_code for r in answers]
    assert set(codes) <= {200, 503}, {
        c: r.text for c, r in zip(codes, answers, strict=True) if c not in (200, 503)
    }
    assert codes.count(200) > 0
    for r in answers:
        if r.status_code == 503:
            assert (
                int(r.headers["retry-after"]) >= 1 and "model loads are already waiting" in r.text
            )
        else:
            assert r.json() == {"bytes": MODEL_BYTES}
    replicas: dict[int, int] = {}
    for _ in range(40):
        seen = handle.memory.remote().result()
        replicas[seen["pid"]] = seen["most_alive"]
    print(f"codes: {codes.count(200)} x 200, {codes.count(503)} x 503; peak bytes {replicas}")
    # Bytes held (resident and loading) never went past the budget.
    assert all(peak <= BUDGET for peak in replicas.values()), replicas
    stats = serval.api.model_stats("burst")
    assert all(s["hot"]["bytes_used"] <= BUDGET for s in stats.values()), stats
    assert all(s["hot"]["bytes_peak"] <= BUDGET for s in stats.values()), stats


BIG = 120 * MB  # each model: a numpy array of this many bytes, pickled
BIG_BUDGET = 600 * MB  # two models resident while a third loads (file + array: 2 x 120 MB)
PAGE = os.sysconf("SC_PAGE_SIZE")


def _big_registry(root: Path, count: int) -> None:
    """``count`` models ``big<i>`` of 120 MB each: one pickle on disk, hard-linked into
    every model's version directory (the registry reads each as its own file)."""
    blob = root / "blob.pkl"
    with open(blob, "wb") as f:
        pickle.dump(np.full(BIG, 7, dtype=np.uint8), f, protocol=pickle.HIGHEST_PROTOCOL)
    for i in range(count):
        version = root / "registry" / f"big{i}" / "1"
        version.mkdir(parents=True)
        os.link(blob, version / "model.pkl")


@serval.deployment(num_replicas=1, max_ongoing_requests=100)
class BigModels:
    def __init__(self, registry: str) -> None:
        serval.models.configure(registry=registry, warm="none")
        self.alive = 0  # bytes of loaded arrays not yet freed, in this process
        self.most_alive = 0

    def _gone(self, nbytes: int) -> None:
        self.alive -= nbytes

    @serval.multiplexed(max_num_models_per_replica=-1, max_bytes=BIG_BUDGET, max_queued_loads=8)
    async def get_model(self, model_id: str) -> np.ndarray:
        model: np.ndarray = await serval.models.load(model_id)
        self.alive += model.nbytes
        self.most_alive = max(self.most_alive, self.alive)
        weakref.finalize(model, self._gone, model.nbytes)
        return model

    async def __call__(self, request: Request) -> dict[str, Any]:
        model = await self.get_model(serval.get_multiplexed_model_id())
        return {"bytes": int(model.nbytes), "first": int(model[0])}

    def memory(self) -> dict[str, int]:
        return {"pid": os.getpid(), "most_alive": self.most_alive}


class _RssPeak:
    """Samples a process's resident set size from outside it (no GIL shared)."""

    def __init__(self, pid: int) -> None:
        self.path = f"/proc/{pid}/statm"
        self.baseline = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        with open(self.path) as f:
            return int(f.read().split()[1]) * PAGE

    def _run(self) -> None:
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> _RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_a_burst_of_distinct_cold_120mb_models_stays_within_the_budget(
    serve: str, tmp_path: Path
) -> None:
    _big_registry(tmp_path, 24)
    handle = serval.run(BigModels.bind(str(tmp_path / "registry")), name="big", route_prefix="/big")
    pid = handle.memory.remote().result()["pid"]
    with _RssPeak(pid) as rss:
        answers = asyncio.run(_burst_at(serve + "/big", [f"big{i}" for i in range(24)]))
    codes = [r.status_code for r in answers]
    assert set(codes) <= {200, 503}, [r.text for r in answers if r.status_code not in (200, 503)]
    assert codes.count(200) >= 3, codes
    for r in answers:
        if r.status_code == 503:
            assert int(r.headers["retry-after"]) >= 1, r.headers
        else:
            assert r.json() == {"bytes": BIG, "first": 7}
    most_alive = handle.memory.remote().result()["most_alive"]
    (stats,) = serval.api.model_stats("big").values()
    grew = rss.peak - rss.baseline
    print(
        f"codes: {codes.count(200)} x 200, {codes.count(503)} x 503; loads "
        f"{stats['hot']['loads']}; peak accounted {stats['hot']['bytes_peak'] / MB:.0f} MB, "
        f"arrays alive {most_alive / MB:.0f} MB, RSS +{grew / MB:.0f} MB "
        f"(budget {BIG_BUDGET / MB:.0f} MB)"
    )
    assert stats["hot"]["loads"] >= 3 and stats["hot"]["bytes_used"] <= BIG_BUDGET
    # The replica's own accounting: resident plus loading bytes, at their highest.
    assert 2 * BIG <= stats["hot"]["bytes_peak"] <= BIG_BUDGET, stats
    # The models' memory as it really was: every array alive at once, evicted or not.
    assert 2 * BIG <= most_alive <= BIG_BUDGET
    # And the process: the file bytes a load reads count too (reserved as well); a
    # little more for what the allocator and the requests hold.
    assert grew <= BIG_BUDGET + 64 * MB, (rss.baseline, rss.peak)


async def _burst_at(url: str, ids: list[str]) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=120) as client:
        return await asyncio.gather(*(client.post(url, headers={HEADER: m}) for m in ids))


def test_multiplexed_answers_name_their_version(serve: str, model_dir: Path) -> None:
    from tests.models.test_serving import ROWS, Scorer

    serval.run(Scorer.bind(str(model_dir), "none"), name="v", route_prefix="/v")
    with httpx.Client(base_url=serve, timeout=60) as client:
        r = client.post("/v", json={"data": ROWS}, headers={HEADER: "iris@production"})
        assert r.status_code == 200, r.text
        assert r.headers["serval-model-version"] == "iris@1"
        assert r.headers["serval-model-alias"] == "production"
        r = client.post("/v", json={"data": ROWS}, headers={HEADER: "iris"})
        assert r.headers["serval-model-version"] == "iris@2"
        assert r.headers["serval-model-alias"] == "latest"
        r = client.post("/v", json={"data": ROWS}, headers={HEADER: "iris@1"})
        assert r.headers["serval-model-version"] == "iris@1"
        assert "serval-model-alias" not in r.headers
        r = client.post("/v", json={"data": ROWS}, headers={HEADER: "nope"})
        assert r.status_code == 404 and "'nope'" in r.text
        assert str(model_dir) not in r.text and "serval-model-version" not in r.headers
