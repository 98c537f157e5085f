"""Live versions: the watcher swaps in what the registry names now."""

from __future__ import annotations

import pytest

from serval.exceptions import ConfigError
from serval.models import ModelCache, ModelStore, StoreConfig, VersionWatcher
from serval.models.multiplexed import _CACHES
from serval.models.registry import MemoryRegistry, ModelRef
from tests.models import _data


@pytest.fixture
def reg() -> MemoryRegistry:
    r = MemoryRegistry()
    r.add("iris", "1", "model.joblib", _data.joblib_bytes(_data.sklearn_model("logreg")))
    r.set_alias("iris", "production", "1")
    return r


def watched_cache(store: ModelStore) -> ModelCache:
    cache = ModelCache(store.load, {"max_models": 8}, sizer=lambda m: 1, name="watched")
    _CACHES.add(cache)  # as @serval.multiplexed registers its caches
    return cache


async def test_a_new_version_and_a_moved_alias_are_swapped_in(reg: MemoryRegistry) -> None:
    store = ModelStore(reg)
    cache = watched_cache(store)
    try:
        latest = await cache.get("iris")
        pinned_version = await cache.get("iris@1")
        await cache.get("iris@production")
        watcher = VersionWatcher(store, interval_s=0)
        assert await watcher.check() == {}  # nothing moved

        reg.add("iris", "2", "model.joblib", _data.joblib_bytes(_data.sklearn_model("forest")))
        reg.set_alias("iris", "production", "2")
        moved = await watcher.check()
        assert moved == {
            "iris": "iris@1 -> iris@2",
            "iris@production": "iris@1 -> iris@2",
        }  # iris@1 names a version: it never moves
        assert type(await cache.get("iris")).__name__ == "RandomForestClassifier"
        assert await cache.get("iris@1") is pinned_version
        assert await cache.get("iris") is not latest
        assert store.served_version("iris") == ModelRef("iris", "2")
    finally:
        _CACHES.discard(cache)


async def test_ids_no_cache_holds_are_forgotten(reg: MemoryRegistry) -> None:
    store = ModelStore(reg)
    cache = watched_cache(store)
    try:
        await cache.get("iris")
        await store.load("iris@production")  # loaded, but no cache keeps it
        await VersionWatcher(store, interval_s=0).check()
        assert store.served_version("iris") == ModelRef("iris", "1")
        assert store.served_version("iris@production") is None
    finally:
        _CACHES.discard(cache)


def test_watch_interval_is_validated() -> None:
    with pytest.raises(ConfigError, match="watch_interval_s"):
        StoreConfig(registry="/srv/models", watch_interval_s=-1)
    assert StoreConfig(registry="/srv/models", watch_interval_s=0).watch_interval_s == 0
