"""The process-wide model store and the functions ``serval.models`` exposes.

Config resolution, once per process (per event loop), at the first :func:`load`:

1. the :class:`~serval.models.config.StoreConfig` given to :func:`configure` in this
   process, if any;
2. else the ``SERVAL_MODELS_*`` environment variables (:mod:`serval.models._env`);
3. defaults for whatever neither sets (a disk warm tier under ``$SERVAL_HOME``).

A registry must come from 1 or 2. A store built by hand (:func:`use_store`) overrides
all three.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable
from typing import Any

from serval.models._env import store_options_from_env
from serval.models.config import StoreConfig, validated
from serval.models.multiplexed import caches, pin_everywhere, unpin_everywhere
from serval.models.stats import ModelStats, TierStats
from serval.models.store import ModelStore
from serval.models.watch import VersionWatcher

__all__ = [
    "close",
    "configure",
    "current_config",
    "evict",
    "load",
    "pin",
    "prewarm",
    "stats",
    "store",
    "unpin",
    "use_store",
]

logger = logging.getLogger("serval.models")


class _State:
    config: StoreConfig | None = None  # from configure()
    store: ModelStore | None = None
    loop: asyncio.AbstractEventLoop | None = None  # the loop the store's clients live on
    custom = False  # installed by use_store()
    watcher: VersionWatcher | None = None  # follows new versions of the cached models
    closing: set[asyncio.Task[None]] = set()


def configure(config: StoreConfig | None = None, /, **options: Any) -> StoreConfig:
    """Set this process's store settings (overriding ``SERVAL_MODELS_*``); the store is
    rebuilt at the next :func:`load`. Bad options raise
    :class:`~serval.exceptions.ConfigError` here.

    Example::

        serval.models.configure(registry="s3://acme/models", warm="redis://cache:6379/0",
                                hmac_key=os.environ["MODELS_KEY"], warm_max_bytes="50GiB")
    """
    if config is not None and options:
        raise TypeError("pass a StoreConfig or keyword options, not both")
    _State.config = validated(StoreConfig, config or options, "serval.models.configure()")
    _drop_store()
    return _State.config


def current_config() -> StoreConfig:
    """The settings the next store is built from (see the module docs)."""
    if _State.config is not None:
        return _State.config
    return validated(StoreConfig, store_options_from_env(), "SERVAL_MODELS_* environment")


def use_store(custom: ModelStore | None) -> None:
    """Serve :func:`load` from ``custom`` (your own registry or tiers); ``None`` goes
    back to the configured store."""
    _drop_store()
    _State.store = custom
    _State.custom = custom is not None
    _State.loop = None


def store() -> ModelStore:
    """This process's store, built on first use from :func:`current_config`."""
    loop = asyncio.get_running_loop()
    if _State.store is not None and (_State.custom or _State.loop is loop):
        return _State.store
    _drop_store()
    config = current_config()
    _State.store = ModelStore.from_config(config)
    _State.loop = loop
    _State.watcher = VersionWatcher(_State.store, config.watch_interval_s)
    _State.watcher.start()
    logger.info("model store: %r", _State.store)
    return _State.store


async def load(model_id: str) -> Any:
    """Load a model: from the warm tier if it holds it, else from the registry.

    Meant for a ``@serval.multiplexed`` method, which keeps the result in memory::

        @serval.multiplexed(max_num_models_per_replica=64, max_bytes="2GiB")
        async def get_model(self, model_id: str):
            return await serval.models.load(model_id)

    Raises :class:`~serval.exceptions.ModelNotFoundError` (HTTP 404) for an unknown id,
    :class:`~serval.exceptions.ModelLoadError` naming the cause for a model that does
    not load.
    """
    return await store().load(model_id)


async def prewarm(model_ids: Iterable[str], *, pin: bool = False) -> dict[str, dict[str, str]]:
    """Load models before they are requested, behind live requests' loads.

    In a replica: into every ``@serval.multiplexed`` cache of this process (``pin=True``
    pins them too). Elsewhere (a driver preparing a rollout): into the warm tier.
    Returns ``{cache name or "warm": {model id: outcome}}``.

    Example::

        await serval.models.prewarm(["tenant1", "tenant2"], pin=True)
    """
    ids = list(dict.fromkeys(model_ids))
    targets = caches()
    if not targets:
        return {"warm": await store().fill_warm(ids)}
    if pin:
        for model_id in ids:
            pin_everywhere(model_id)
    return {cache.name: await cache.prewarm(ids) for cache in targets}


def pin(model_id: str) -> None:
    """Never evict ``model_id`` from the model caches of this process (including caches
    created later); it loads on first use or :func:`prewarm`."""
    pin_everywhere(model_id)


def unpin(model_id: str) -> None:
    """Let the caches of this process evict ``model_id`` again."""
    unpin_everywhere(model_id)


async def evict(model_id: str) -> bool:
    """Unload ``model_id`` from every model cache of this process (unpinning it);
    whether any held it."""
    unpin_everywhere(model_id)
    evicted = False
    for cache in caches():
        evicted = await cache.evict(model_id) or evicted
    return evicted


def stats() -> ModelStats:
    """Counters of the three tiers in this process (``hot`` sums its caches).

    Example::

        s = serval.models.stats()
        print(s.hot.hits, s.hot.misses, s.warm.bytes_used, s.cold.load_time_s)
    """
    hot = functools.reduce(lambda a, b: a + b, (c.stats() for c in caches()), TierStats())
    if _State.store is None:
        return ModelStats(hot, TierStats(), TierStats())
    warm, cold = _State.store.stats()
    return ModelStats(hot, warm, cold)


async def close() -> None:
    """Close this process's store (pending warm writes finish, connections close); the
    next :func:`load` builds it again. Model caches are left as they are."""
    current, _State.store = _State.store, None
    watcher, _State.watcher = _State.watcher, None
    _State.custom = False
    _State.loop = None
    if watcher is not None:
        await watcher.aclose()
    if current is not None:
        await current.close()
    if _State.closing:
        await asyncio.gather(*list(_State.closing), return_exceptions=True)


def _drop_store() -> None:
    """Forget the current store, closing it in the background when that is possible."""
    watcher, _State.watcher = _State.watcher, None
    if watcher is not None:
        watcher.stop()
    current, _State.store = _State.store, None
    loop, _State.loop = _State.loop, None
    _State.custom = False
    if current is None:
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is not None and running is loop:
        task = running.create_task(current.close())
        _State.closing.add(task)
        task.add_done_callback(_State.closing.discard)
