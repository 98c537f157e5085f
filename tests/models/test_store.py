"""The store: warm tier, else registry; corrupt files, unknown ids, failing registries."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from serval.exceptions import ModelLoadError, ModelNotFoundError
from serval.models import CacheConfig, ModelCache, ModelStore, StoreConfig
from serval.models.registry import Artifact, MemoryRegistry, ModelRef
from serval.models.tiers import MemoryTier, WarmTier
from serval.models.tiers.disk import DiskTier
from tests.models import _data

SECRET = b"0123456789abcdef"


def registry() -> MemoryRegistry:
    reg = MemoryRegistry()
    reg.add("iris", "1", "model.joblib", _data.joblib_bytes(_data.sklearn_model("logreg")))
    reg.add("iris", "2", "model.joblib", _data.joblib_bytes(_data.sklearn_model("forest")))
    reg.set_alias("iris", "production", "1")
    reg.add("corrupt", "1", "model.joblib", b"this is not a joblib file")
    return reg


def store_with_warm(reg: MemoryRegistry, backend: MemoryTier | None = None) -> ModelStore:
    warm = WarmTier(backend or MemoryTier(), max_bytes=10**9, secret=SECRET, namespace="r")
    return ModelStore(reg, warm)


async def test_the_warm_tier_spares_the_registry() -> None:
    reg, backend = registry(), MemoryTier()
    first = store_with_warm(reg, backend)
    await first.load("iris")
    await first.flush()
    second = store_with_warm(reg, backend)  # another replica on the same warm tier
    model = await second.load("iris@2")
    assert type(model).__name__ == "RandomForestClassifier"
    assert reg.fetches == [ModelRef("iris", "2")]  # one registry fetch for both
    warm, cold = second.stats()
    assert (warm.hits, cold.loads) == (1, 0)
    assert repr(first).startswith("ModelStore(MemoryRegistry('memory'), warm=WarmTier(")


async def test_aliases_resolve_to_versions() -> None:
    store = ModelStore(registry())
    assert await store.resolve("iris@production") == ModelRef("iris", "1")
    assert type(await store.load("iris@production")).__name__ == "LogisticRegression"


async def test_a_corrupt_model_file_is_a_clear_error_and_is_not_cached() -> None:
    reg, backend = registry(), MemoryTier()
    store = store_with_warm(reg, backend)
    with pytest.raises(ModelLoadError) as caught:
        await store.load("corrupt")
    error = caught.value
    assert error.model_id == "corrupt"
    assert "corrupt@1: 'model.joblib' does not load with load_joblib:" in error.cause
    assert str(error).startswith("model 'corrupt' failed to load:")
    await store.flush()
    assert backend.blobs == {}  # never put in the warm tier
    _, cold = store.stats()
    assert cold.loads == 1


async def test_a_corrupt_model_is_retried_with_backoff_and_not_kept_in_memory(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reg = registry()
    store = ModelStore(reg)
    cache = ModelCache(store.load, CacheConfig(load_retries=2, retry_backoff_s=0.001))
    with caplog.at_level(logging.WARNING, "serval.models"), pytest.raises(ModelLoadError) as caught:
        await cache.get("corrupt")
    assert "does not load with load_joblib" in caught.value.cause
    assert "(after 3 attempts)" in caught.value.cause
    assert len(reg.fetches) == 3 and "corrupt" not in cache
    assert "retrying in 0.00" in caplog.text


async def test_unknown_models_are_not_found_and_named() -> None:
    store = ModelStore(registry())
    with pytest.raises(ModelNotFoundError, match="'tenant404' does not exist"):
        await store.load("tenant404")
    with pytest.raises(ModelNotFoundError, match="'iris' has no version or alias 'v9'"):
        await store.load("iris@v9")
    assert store.stats()[1].misses == 2


class BrokenRegistry(MemoryRegistry):
    async def versions(self, name: str) -> list[str]:
        raise ConnectionError("registry unreachable")


async def test_a_failing_registry_is_a_load_error_naming_it() -> None:
    store = ModelStore(BrokenRegistry("s3://models"))
    with pytest.raises(ModelLoadError, match=r"the registry s3://models failed: ConnectionError"):
        await store.load("iris")
    assert store.stats()[1].load_failures == 1


async def test_a_warm_copy_that_does_not_load_is_replaced(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reg, backend = registry(), MemoryTier()
    store = store_with_warm(reg, backend)
    # Correctly signed (say, a bug in an older serval wrote it) but not a model.
    ref = ModelRef("iris", "1")
    bad = Artifact(ref, "model.joblib", b"garbage").to_bytes()
    await store.warm.put(str(ref), bad, cost=1.0)  # type: ignore[union-attr]
    with caplog.at_level(logging.WARNING, "serval.models"):
        model = await store.load("iris@1")
    assert type(model).__name__ == "LogisticRegression"
    assert "warm copy of iris@1 does not load" in caplog.text
    await store.flush()
    assert await store_with_warm(reg, backend).load("iris@1") is not None
    assert len(reg.fetches) == 1


async def test_fill_warm_before_a_rollout() -> None:
    reg, backend = registry(), MemoryTier()
    store = store_with_warm(reg, backend)
    outcomes = await store.fill_warm(["iris", "iris@production", "nope"])
    assert outcomes["iris"] == "cached iris@2"
    assert outcomes["iris@production"] == "cached iris@1"
    assert outcomes["nope"].startswith("error: model 'nope' does not exist")
    assert len(backend.blobs) == 2
    no_warm = await ModelStore(reg).fill_warm(["iris"])
    assert no_warm == {"iris": "error: no warm tier is configured"}


async def test_from_config(tmp_path: Path, model_dir: Path) -> None:
    disk = ModelStore.from_config(StoreConfig(registry=str(model_dir), warm=f"disk:{tmp_path}"))
    assert isinstance(disk.warm, WarmTier) and isinstance(disk.warm.backend, DiskTier)
    assert disk.warm.backend.directory == str(tmp_path)
    await disk.load("iris")
    await disk.flush()
    assert list(tmp_path.glob("*.blob"))
    memory = ModelStore.from_config({"registry": str(model_dir), "warm": "memory"})
    assert isinstance(memory.warm.backend, MemoryTier)  # type: ignore[union-attr]
    assert ModelStore.from_config({"registry": str(model_dir), "warm": "none"}).warm is None
    for store in (disk, memory):
        await store.close()
