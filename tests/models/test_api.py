"""serval.models: configure, load, prewarm, pin, evict and stats, from one process."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

import serval
import serval.models
from serval.exceptions import ConfigError, ModelNotFoundError
from serval.models import ModelStore, StoreConfig
from serval.models.registry import MemoryRegistry
from tests.models import _data


def test_public_names_are_sorted_and_present() -> None:
    assert serval.models.__all__ == sorted(serval.models.__all__)
    for name in serval.models.__all__:
        assert hasattr(serval.models, name), name
    assert serval.multiplexed is serval.models.multiplexed


async def test_configure_then_load(model_dir: Path, tmp_path: Path) -> None:
    config = serval.models.configure(registry=str(model_dir), warm=f"disk:{tmp_path}")
    assert serval.models.current_config() == config
    model = await serval.models.load("iris@production")
    assert type(model).__name__ == "LogisticRegression"
    with pytest.raises(ModelNotFoundError, match="tenant404"):
        await serval.models.load("tenant404")
    stats = serval.models.stats()
    assert stats.cold.loads == 1 and stats.cold.misses == 1
    assert stats.warm.misses == 1
    assert set(stats.as_dict()) == {"hot", "warm", "cold"}


def test_bad_options_fail_in_configure() -> None:
    with pytest.raises(ConfigError, match="'warm'"):
        serval.models.configure(registry="/srv/models", warm="ftp://cache")
    with pytest.raises(ConfigError, match="hmac_key"):
        serval.models.configure(registry="/srv/models", warm="redis://cache:6379/0")
    with pytest.raises(TypeError, match="not both"):
        serval.models.configure(StoreConfig(), warm="memory")


async def test_settings_come_from_the_environment(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVAL_MODELS_REGISTRY", str(model_dir))
    monkeypatch.setenv("SERVAL_MODELS_WARM", f"disk:{tmp_path}")
    monkeypatch.setenv("SERVAL_MODELS_WARM_MAX_BYTES", "1GiB")
    config = serval.models.current_config()
    assert (config.registry, config.warm_max_bytes) == (str(model_dir), 1024**3)
    assert type(await serval.models.load("iris@2")).__name__ == "RandomForestClassifier"
    monkeypatch.setenv("SERVAL_MODELS_WARM_MAX_BYTES", "lots")
    with pytest.raises(ConfigError, match="SERVAL_MODELS_\\* environment"):
        serval.models.current_config()


async def test_no_registry_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="no model registry configured"):
        await serval.models.load("iris")


async def test_use_store() -> None:
    registry = MemoryRegistry()
    registry.add("m", "1", "model.pkl", _data.pickle_bytes("the model"))
    serval.models.use_store(ModelStore(registry))
    assert await serval.models.load("m") == "the model"
    assert serval.models.store().registry is registry
    serval.models.use_store(None)


async def test_prewarm_pin_evict_in_a_replica(model_dir: Path) -> None:
    serval.models.configure(registry=str(model_dir), warm="memory")
    gc.collect()

    class Scorer:
        @serval.multiplexed(max_num_models_per_replica=1)
        async def get_model(self, model_id: str) -> object:
            return await serval.models.load(model_id)

    scorer = Scorer()
    cache = serval.models.cache_of(scorer.get_model)
    outcomes = await serval.models.prewarm(["iris@1", "iris@2"], pin=True)
    assert outcomes == {cache.name: {"iris@1": "loaded", "iris@2": "loaded"}}
    assert cache.loaded_model_ids() == ["iris@1", "iris@2"]  # pinned: over the count
    await scorer.get_model("iris@production")  # a third, not pinned
    assert "iris@1" in cache and "iris@2" in cache
    serval.models.unpin("iris@2")
    assert cache.pinned == {"iris@1"}
    assert await serval.models.evict("iris@1")
    assert not await serval.models.evict("iris@1")
    serval.models.pin("later")
    assert serval.models.cache_of(Scorer().get_model).pinned == {"later"}  # new caches too
    stats = serval.models.stats()
    assert stats.hot.loads == 3 and stats.hot.evictions >= 1


async def test_prewarm_outside_a_replica_fills_the_warm_tier(
    model_dir: Path, tmp_path: Path
) -> None:
    gc.collect()
    serval.models.configure(registry=str(model_dir), warm=f"disk:{tmp_path}")
    outcomes = await serval.models.prewarm(["iris", "nope"])
    assert outcomes["warm"]["iris"] == "cached iris@2"
    assert outcomes["warm"]["nope"].startswith("error: model 'nope' does not exist")
    assert len(list(tmp_path.glob("*.blob"))) == 1
