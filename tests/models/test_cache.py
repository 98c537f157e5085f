"""The hot tier: single flight, bounded and prioritized loads, failures, budgets, pins."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

import pytest

from serval.exceptions import BadRequestError, ConfigError, ModelLoadError, ModelNotFoundError
from serval.models import CacheConfig, ModelCache


class Recorder:
    """A loader that counts its calls and can be made to wait or fail."""

    def __init__(self, *, fail: int = 0, gate: asyncio.Event | None = None) -> None:
        self.calls: Counter[str] = Counter()
        self.started: list[str] = []
        self.running = 0
        self.most_running = 0
        self.fail = fail  # the first `fail` calls raise
        self.gate = gate

    async def __call__(self, model_id: str) -> Any:
        self.calls[model_id] += 1
        self.started.append(model_id)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            if self.gate is not None:
                await self.gate.wait()
            else:
                await asyncio.sleep(0)
            if sum(self.calls.values()) <= self.fail:
                raise OSError(f"disk hiccup #{sum(self.calls.values())}")
            if model_id.startswith("missing"):
                raise ModelNotFoundError(f"model {model_id!r} does not exist")
            return Model(model_id)
        finally:
            self.running -= 1


class Model:
    closed: list[str] = []

    def __init__(self, name: str) -> None:
        self.name = name

    def close(self) -> None:
        Model.closed.append(self.name)


@pytest.fixture(autouse=True)
def _reset_closed() -> None:
    Model.closed = []


def cache(loader: Any, **options: Any) -> ModelCache:
    options.setdefault("retry_backoff_s", 0.0)
    return ModelCache(loader, CacheConfig(**options), sizer=lambda m: 1)


async def test_fifty_concurrent_requests_for_a_cold_model_load_it_once() -> None:
    loader = Recorder(gate=asyncio.Event())
    models = cache(loader)
    waiters = [asyncio.ensure_future(models.get("cold")) for _ in range(50)]
    await asyncio.sleep(0.01)
    assert models.loaded_model_ids() == ["cold"]  # loading counts
    assert models.loaded_model_ids(include_loading=False) == []
    loader.gate.set()  # type: ignore[union-attr]
    results = await asyncio.gather(*waiters)
    assert loader.calls == {"cold": 1}
    assert all(r is results[0] for r in results)
    assert await models.get("cold") is results[0]
    stats = models.stats()
    assert (stats.loads, stats.misses, stats.hits, stats.entries) == (1, 50, 1, 1)


async def test_a_background_load_is_listed_once_loaded_or_once_a_request_waits() -> None:
    """A prewarm (a router copying a hot model here) is not reported as held while it
    loads — requests would wait here for it — unless a request joins it."""
    loader = Recorder(gate=asyncio.Event())
    models = cache(loader)
    warming = asyncio.ensure_future(models.prewarm(["copy", "joined"]))
    await asyncio.sleep(0.01)
    assert models.loaded_model_ids() == []  # background only
    waiter = asyncio.ensure_future(models.get("joined"))  # a request now waits on it
    await asyncio.sleep(0.01)
    assert models.loaded_model_ids() == ["joined"]
    loader.gate.set()  # type: ignore[union-attr]
    assert await warming == {"copy": "loaded", "joined": "loaded"}
    await waiter
    assert models.loaded_model_ids() == ["copy", "joined"]
    assert loader.calls == {"copy": 1, "joined": 1}


async def test_a_failed_load_is_retried_with_doubling_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loader = Recorder(fail=2)
    models = ModelCache(loader, CacheConfig(load_retries=2, retry_backoff_s=0.01))
    with caplog.at_level(logging.WARNING, "serval.models"):
        model = await models.get("flaky")
    assert model.name == "flaky" and loader.calls == {"flaky": 3}
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 2
    assert "attempt 1 of 3" in retries[0] and "retrying in 0.01s" in retries[0]
    assert "attempt 2 of 3" in retries[1] and "retrying in 0.02s" in retries[1]
    assert "OSError: disk hiccup #1" in retries[0]


async def test_a_load_that_keeps_failing_names_the_model_and_is_not_cached() -> None:
    loader = Recorder(fail=10**6)
    models = cache(loader, load_retries=1)
    waiters = [models.get("broken") for _ in range(5)]
    errors = await asyncio.gather(*waiters, return_exceptions=True)
    for error in errors:
        assert isinstance(error, ModelLoadError)
        assert error.model_id == "broken"
        assert "OSError: disk hiccup" in error.cause and "(after 2 attempts)" in error.cause
        assert str(error).startswith("model 'broken' failed to load:")
    assert loader.calls == {"broken": 2}  # five callers, one load (with its retry)
    assert "broken" not in models and models.loaded_model_ids() == []
    assert models.stats().load_failures == 1
    with pytest.raises(ModelLoadError):
        await models.get("broken")
    assert loader.calls == {"broken": 4}  # not cached: the next request tries again


async def test_unknown_model_is_not_retried() -> None:
    loader = Recorder()
    models = cache(loader, load_retries=3)
    with pytest.raises(ModelNotFoundError, match="missing7"):
        await models.get("missing7")
    assert loader.calls == {"missing7": 1}


async def test_load_timeout() -> None:
    loader = Recorder(gate=asyncio.Event())  # never set: the load hangs
    models = cache(loader, load_timeout_s=0.05, load_retries=0)
    with pytest.raises(ModelLoadError, match=r"timed out after 0.05s \(load_timeout_s\)"):
        await models.get("slow")
    assert "slow" not in models and loader.running == 0  # the hung load was cancelled


async def test_a_loader_that_is_not_async_fails_once_with_a_clear_cause() -> None:
    calls = []

    def sync_loader(model_id: str) -> str:
        calls.append(model_id)
        return model_id

    models = cache(sync_loader, load_retries=3)
    with pytest.raises(ModelLoadError, match="not an awaitable: give it an 'async def'"):
        await models.get("m")
    assert calls == ["m"]


async def test_loads_are_bounded() -> None:
    gate = asyncio.Event()
    loader = Recorder(gate=gate)
    models = cache(loader, max_models=10, max_concurrent_loads=2)
    first = asyncio.ensure_future(models.get("first"))  # no size known yet: runs alone
    await asyncio.sleep(0.01)
    waiters = [asyncio.ensure_future(models.get(f"m{i}")) for i in range(6)]
    await asyncio.sleep(0.01)
    assert loader.running == 1
    gate.set()
    await asyncio.gather(first, *waiters)
    gate.clear()
    loader.most_running = 0
    waiters = [asyncio.ensure_future(models.get(f"n{i}")) for i in range(6)]
    await asyncio.sleep(0.01)
    assert loader.running == 2  # the explicit cap
    gate.set()
    await asyncio.gather(*waiters)
    assert loader.most_running == 2 and sum(loader.calls.values()) == 13


async def test_live_loads_go_before_prewarms() -> None:
    gate = asyncio.Event()
    loader = Recorder(gate=gate)
    models = cache(loader, max_models=10, max_concurrent_loads=1)
    first = asyncio.ensure_future(models.get("first"))  # takes the only slot
    await asyncio.sleep(0.01)
    prewarm = asyncio.ensure_future(models.prewarm(["bg1", "bg2", "bg3"]))
    await asyncio.sleep(0.01)
    live = asyncio.ensure_future(models.get("live"))
    promoted = asyncio.ensure_future(models.get("bg3"))  # a live request joins bg3's load
    await asyncio.sleep(0.01)
    gate.set()
    await asyncio.gather(first, live, promoted)
    outcomes = await prewarm
    # Both live loads (bg3 was promoted when a request joined it) before the prewarms.
    assert loader.started[0] == "first" and set(loader.started[1:3]) == {"live", "bg3"}
    assert loader.started[3:] == ["bg1", "bg2"]
    assert outcomes == {"bg1": "loaded", "bg2": "loaded", "bg3": "loaded"}


async def test_a_caller_going_away_does_not_cancel_the_load() -> None:
    gate = asyncio.Event()
    loader = Recorder(gate=gate)
    models = cache(loader)
    impatient = asyncio.ensure_future(models.get("m"))
    patient = asyncio.ensure_future(models.get("m"))
    await asyncio.sleep(0.01)
    impatient.cancel()
    gate.set()
    assert (await patient).name == "m"
    assert loader.calls == {"m": 1} and "m" in models


async def test_count_budget_evicts_and_closes() -> None:
    models = cache(Recorder(), max_models=2, policy="lru")
    for name in ("a", "b", "c"):
        await models.get(name)
    assert models.loaded_model_ids() == ["b", "c"]
    assert Model.closed == ["a"]
    assert models.stats().evictions == 1


async def test_byte_budget_with_measured_sizes() -> None:
    sizes = {"small": 100, "big": 900, "huge": 5_000}

    calls: Counter[str] = Counter()

    async def load(model_id: str) -> Model:
        calls[model_id] += 1
        return Model(model_id)

    models = ModelCache(
        load, {"max_models": None, "max_bytes": 1_000}, sizer=lambda m: sizes[m.name]
    )
    await models.get("small")
    await models.get("big")
    assert models.stats().bytes_used == 1_000
    kept: list[list[str]] = []
    for _ in range(2):  # larger than the whole budget: a clear error
        with pytest.raises(ModelLoadError) as caught:
            await models.get("huge")
        assert caught.value.model_id == "huge"
        assert "5000 bytes" in caught.value.cause and "max_bytes=1000 B" in caught.value.cause
        kept.append(models.loaded_model_ids())
    assert calls["huge"] == 1  # its size is remembered: not loaded again to fail again
    assert "huge" not in models and models.stats().rejected == 2
    # Its first load reserved what the largest model so far took (its own size was
    # unknown), making room for that by policy; the refusal after that evicts nothing.
    assert kept[0] == kept[1] and models.stats().bytes_used <= 1_000


async def test_a_pinned_model_is_never_evicted() -> None:
    models = cache(Recorder(), max_models=2, policy="lru")
    models.pin("vip")
    await models.get("vip")
    for i in range(10):
        await models.get(f"tenant{i}")
    assert "vip" in models and models.pinned == {"vip"}
    assert "vip" not in Model.closed
    assert models.unpin("vip") and not models.unpin("vip")
    await models.get("one-more")
    await models.get("and-another")
    assert "vip" not in models


async def test_pinned_models_may_go_over_the_limits(caplog: pytest.LogCaptureFixture) -> None:
    models = cache(Recorder(), max_models=1)
    models.pin("p1")
    models.pin("p2")
    await models.get("p1")
    with caplog.at_level(logging.WARNING, "serval.models"):
        await models.get("p2")
    assert models.loaded_model_ids() == ["p1", "p2"]
    assert "pinned models do not fit" in caplog.text


async def test_prewarm_reports_each_outcome() -> None:
    async def load(model_id: str) -> Model:
        if model_id == "bad":
            raise ModelNotFoundError(f"model {model_id!r} does not exist")
        return Model(model_id)

    models = ModelCache(load, {"max_bytes": 10}, sizer=lambda m: 100 if m.name == "big" else 1)
    await models.get("warm")
    outcomes = await models.prewarm(["warm", "new", "bad", "big", "new"])
    assert outcomes["warm"] == "already loaded"
    assert outcomes["new"] == "loaded"
    assert outcomes["bad"].startswith("error: model 'bad' does not exist")
    assert outcomes["big"].startswith("error: model 'big' failed to load: it takes 100 B")
    assert list(outcomes) == ["warm", "new", "bad", "big"]


async def test_eviction_awaits_async_close_and_async_del() -> None:
    released: list[str] = []

    class AsyncClose:
        async def close(self) -> None:
            await asyncio.sleep(0)
            released.append("close")

    class AsyncDel:  # Ray Serve's unload hook
        async def __del__(self) -> None:
            released.append("__del__")

    class RaisingClose:
        def close(self) -> None:
            raise RuntimeError("boom")

    kinds = {"c": AsyncClose, "d": AsyncDel, "r": RaisingClose}

    async def load(model_id: str) -> Any:
        return kinds[model_id]()

    models = ModelCache(load, {"max_models": 3})
    for key in kinds:
        await models.get(key)
    assert await models.evict("c") and await models.evict("d")
    assert released == ["close", "__del__"]
    assert await models.evict("r")  # its close() raised: logged, the model leaves anyway
    assert not await models.evict("r")
    assert models.loaded_model_ids() == []


async def test_refresh_swaps_in_a_new_load_and_releases_the_old() -> None:
    loader = Recorder()
    models = cache(loader)
    old = await models.get("m")
    assert not await models.refresh("other")  # not loaded: nothing to do
    assert await models.refresh("m")
    new = await models.get("m")
    assert new is not old and loader.calls == {"m": 2}
    assert Model.closed == ["m"]


async def test_clear_unloads_everything_and_cancels_loads() -> None:
    gate = asyncio.Event()
    loader = Recorder(gate=gate)
    models = cache(loader, max_models=5)
    gate.set()
    await models.get("a")
    models.pin("a")
    gate.clear()
    pending = asyncio.ensure_future(models.get("b"))
    await asyncio.sleep(0.01)
    await models.clear()
    assert models.loaded_model_ids() == [] and models.pinned == frozenset()
    assert Model.closed == ["a"]
    with pytest.raises(asyncio.CancelledError):
        await pending


async def test_bad_model_ids() -> None:
    models = cache(Recorder())
    with pytest.raises(BadRequestError, match="serve_multiplexed_model_id"):
        await models.get("")
    with pytest.raises(TypeError, match="must be a str"):
        await models.get(7)  # type: ignore[arg-type]


def test_bad_options_fail_when_the_cache_is_made() -> None:
    with pytest.raises(ConfigError, match="max_bytes"):
        ModelCache(Recorder(), {"max_bytes": "lots"})
    with pytest.raises(ConfigError, match="policy"):
        ModelCache(Recorder(), {"policy": "fifo"})
    with pytest.raises(TypeError, match="async callable loader"):
        ModelCache("not a loader", {})  # type: ignore[arg-type]


def test_repr_says_what_it_holds() -> None:
    text = repr(cache(Recorder(), max_models=4))
    assert text.startswith("ModelCache('models', models=0, bytes=0,") and "max_models=4" in text


async def test_resize_evicts_over_the_new_limits_but_keeps_pins() -> None:
    models = cache(Recorder(), max_models=4, policy="lru")
    models.pin("vip")
    for name in ("vip", "a", "b", "c"):
        await models.get(name)
    evicted = models.resize(max_models=2)
    assert sorted(evicted) == ["a", "b"] and models.loaded_model_ids() == ["c", "vip"]
    await asyncio.sleep(0)  # the evicted ones are released in the background
    assert sorted(Model.closed) == ["a", "b"]
    assert models.config.max_models == 2


async def test_resize_rejects_bad_limits_naming_them() -> None:
    models = cache(Recorder(), max_models=4)
    with pytest.raises(TypeError, match="policy"):
        models.resize(policy="lru")
    with pytest.raises(ConfigError, match="max_bytes"):
        models.resize(max_bytes="lots")
    assert models.config.max_models == 4
