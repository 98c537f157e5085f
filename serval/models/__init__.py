"""Serving many models: a hot / warm / cold model store with cost-aware eviction.

::

    hot   a replica's memory       ModelCache (@serval.multiplexed): count and byte budgets,
                                   single-flight loads, pinning, eviction that frees memory
    warm  shared serialized copies disk directory per machine (default) or Redis across
                                   machines; signed blobs, own budget and eviction
    cold  the registry             a directory / fsspec URL, or MLflow's model registry

Usage in a deployment::

    import serval

    @serval.deployment(num_replicas=2)
    class Scorer:
        @serval.multiplexed(max_num_models_per_replica=64, max_bytes="2GiB")
        async def get_model(self, model_id: str):
            return await serval.models.load(model_id)     # warm, else cold

        async def __call__(self, request):
            model = await self.get_model(serval.get_multiplexed_model_id())
            return model.predict(await request.json()).tolist()

Where models come from: ``serval.models.configure(registry=..., warm=...)`` in the
process, else the ``SERVAL_MODELS_*`` environment variables (see
:mod:`serval.models._api` for the order, :mod:`serval.models._env` for the variables).
"""

from __future__ import annotations

from serval.models._api import (
    close,
    configure,
    current_config,
    evict,
    load,
    pin,
    prewarm,
    stats,
    store,
    unpin,
    use_store,
)
from serval.models.cache import ModelCache
from serval.models.config import CacheConfig, StoreConfig
from serval.models.multiplexed import cache_of, loaded_model_ids, multiplexed
from serval.models.stats import ModelStats, TierStats
from serval.models.store import ModelStore
from serval.models.watch import VersionWatcher

__all__ = [
    "CacheConfig",
    "ModelCache",
    "ModelStats",
    "ModelStore",
    "StoreConfig",
    "TierStats",
    "VersionWatcher",
    "cache_of",
    "close",
    "configure",
    "current_config",
    "evict",
    "load",
    "loaded_model_ids",
    "multiplexed",
    "pin",
    "prewarm",
    "stats",
    "store",
    "unpin",
    "use_store",
]
