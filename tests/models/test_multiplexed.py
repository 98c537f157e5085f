"""@serval.multiplexed: Ray Serve's decorator on serval's hot tier; options checked early."""

from __future__ import annotations

import gc
from typing import Any

import pytest

import serval
from serval.exceptions import BadRequestError, ConfigError, ModelNotFoundError, ServalError
from serval.models import ModelCache, cache_of, loaded_model_ids
from serval.models.multiplexed import admin, caches


class Tenant:
    def __init__(self, name: str, owner: str = "") -> None:
        self.name, self.owner = name, owner

    def close(self) -> None:
        pass


@pytest.fixture(autouse=True)
def _no_caches_left_by_other_tests() -> None:
    gc.collect()  # caches of instances from earlier tests are gone (they are weak)


class Scorer:
    """A deployment class as a user writes it (Ray Serve's form, unchanged)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.loads: list[str] = []

    @serval.multiplexed(max_num_models_per_replica=2)
    async def get_model(self, model_id: str) -> Tenant:
        self.loads.append(model_id)
        if model_id.startswith("missing"):
            raise ModelNotFoundError(f"model {model_id!r} does not exist")
        return Tenant(model_id, self.name)


async def test_each_instance_has_its_own_cache() -> None:
    a, b = Scorer("a"), Scorer("b")
    assert (await a.get_model("t1")).owner == "a"
    assert (await a.get_model(model_id="t1")).owner == "a"  # keyword form
    assert (await b.get_model("t1")).owner == "b"
    assert a.loads == ["t1"] and b.loads == ["t1"]
    for model_id in ("t2", "t3"):
        await a.get_model(model_id)
    # two per replica; t1, asked for twice, is worth keeping over t2
    assert cache_of(a.get_model).loaded_model_ids() == ["t1", "t3"]
    assert cache_of(b.get_model).loaded_model_ids() == ["t1"]
    assert loaded_model_ids() == ["t1", "t3"]  # every cache of the process


async def test_a_plain_function_shares_one_cache() -> None:
    calls: list[str] = []

    @serval.multiplexed(max_num_models_per_replica=-1, max_bytes="1GiB")
    async def get_model(model_id: str) -> Tenant:
        calls.append(model_id)
        return Tenant(model_id)

    for _ in range(3):
        await get_model("t")
    assert calls == ["t"]
    cache = cache_of(get_model)
    assert isinstance(cache, ModelCache) and cache.config.max_models is None
    assert cache.config.max_bytes == 1024**3
    assert get_model.__name__ == "get_model"  # functools.wraps


async def test_errors_reach_the_caller() -> None:
    scorer = Scorer("a")
    with pytest.raises(ModelNotFoundError, match="missing1"):
        await scorer.get_model("missing1")
    with pytest.raises(BadRequestError):
        await scorer.get_model("")


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"max_bytes": "lots"}, "max_bytes"),
        ({"max_num_models_per_replica": 0}, "max_num_models_per_replica"),
        ({"max_num_models_per_replica": "3"}, "max_num_models_per_replica"),
        ({"max_num_models_per_replica": True}, "max_num_models_per_replica"),
        ({"policy": "fifo"}, "policy"),
        ({"admission": "bouncer"}, "admission"),
        ({"max_concurrent_loads": 0}, "max_concurrent_loads"),
        ({"load_timeout_s": -1}, "load_timeout_s"),
        ({"sizer": 42}, "sizer"),
    ],
)
def test_bad_options_fail_at_decoration_naming_the_option(
    options: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        serval.multiplexed(**options)
    text = str(caught.value)
    assert named in text and "@serval.multiplexed" in text
    assert repr(next(iter(options.values()))) in text


def test_only_async_functions_of_one_model_id() -> None:
    with pytest.raises(TypeError, match="only decorate 'async def'"):

        @serval.multiplexed
        def sync_loader(model_id: str) -> None: ...

    with pytest.raises(TypeError, match="takes 3 arguments"):

        @serval.multiplexed
        async def too_many(self: Any, model_id: str, version: str) -> None: ...

    with pytest.raises(TypeError, match=r"not a @serval\.multiplexed"):
        cache_of(Scorer("a").__init__)
    with pytest.raises(TypeError, match=r"pass the bound method \(self\.get_model\)"):
        cache_of(Scorer.get_model)


async def test_pins_and_admin_operations() -> None:
    scorer = Scorer("a")
    cache = cache_of(scorer.get_model)
    results = await admin("pin", ["vip"])
    assert results[cache.name]["vip"] == "pinned, loaded"
    for model_id in ("t1", "t2", "t3"):
        await scorer.get_model(model_id)
    assert "vip" in cache and cache.pinned == {"vip"}
    assert (await admin("prewarm", ["t9"]))[cache.name]["t9"] == "loaded"
    assert (await admin("refresh", ["vip"]))[cache.name]["vip"] == "refreshed"
    assert (await admin("unpin", ["vip"]))[cache.name]["vip"] == "unpinned"
    assert (await admin("evict", ["vip", "nope"]))[cache.name] == {
        "vip": "evicted",
        "nope": "not loaded",
    }
    with pytest.raises(BadRequestError, match="unknown model operation 'explode'"):
        await admin("explode", ["t1"])
    assert cache in caches()


async def test_admin_without_a_cache() -> None:
    assert caches() == []  # the caches of earlier tests' instances are gone
    with pytest.raises(ServalError, match=r"no @serval\.multiplexed model cache"):
        await admin("prewarm", ["t1"])
