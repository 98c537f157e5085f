"""Live versions: models in memory follow the registry without a restart.

A model id names a model and maybe a version or alias (``tenant7``, ``tenant7@3``,
``tenant7@production``). ``tenant7`` and ``tenant7@production`` are moving targets:
when the registry gets a new version or the alias moves, the replicas that hold the
model should serve the new version. :class:`VersionWatcher` runs in each replica that
loads through :func:`serval.models.load`, every ``watch_interval_s`` seconds:

1. for each model id held in one of this process's caches, ask the registry which
   version it names now (:meth:`ModelStore.resolve`);
2. when that differs from the version the store loaded for it, refresh the cache entry
   (:meth:`ModelCache.refresh`): the new version loads in the background while the old
   one keeps serving, then the entry is swapped in one step and the old model released.

A request holds the model object it got for its whole duration, so no request sees an
error or a mix of versions. An explicit ``refresh`` (admin API, ``serval models
refresh``) does step 2 at once, without waiting for the next check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from serval.exceptions import ServalError
from serval.models.multiplexed import caches
from serval.models.store import ModelStore

__all__ = ["VersionWatcher"]

logger = logging.getLogger("serval.models")


class VersionWatcher:
    """Refreshes the cached models of this process whose version moved (module docs).

    Example::

        watcher = VersionWatcher(store, interval_s=30)
        watcher.start()                 # on the replica's event loop
        moved = await watcher.check()   # one pass now: {"tenant7": "tenant7@3 -> tenant7@4"}
    """

    def __init__(self, store: ModelStore, interval_s: float) -> None:
        self.store = store
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._failing = False  # the registry check is failing (logged once per outage)

    def start(self) -> None:
        if self._task is None and self.interval_s > 0:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="serval-models-watch"
            )

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def check(self) -> dict[str, str]:
        """One pass over the cached models; returns those that moved and what to."""
        held = [(cache, m) for cache in caches() for m in cache.loaded_model_ids()]
        # Ids loading now load the current version; ids no longer held need no record.
        self.store.forget_served({m for _, m in held})
        moved: dict[str, str] = {}
        for cache, model_id in held:
            served = self.store.served_version(model_id)
            if served is None or model_id not in cache:
                continue  # loading, or loaded by a user loader rather than the store
            current = await self.store.resolve(model_id)
            if current == served:
                continue
            logger.info("model %r moved from %s to %s: swapping it in", model_id, served, current)
            if await cache.refresh(model_id):
                moved[model_id] = f"{served} -> {current}"
        return moved

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.check()
            except (ServalError, OSError) as exc:
                if not self._failing:
                    logger.warning("checking models for new versions failed: %s", exc)
                self._failing = True
                continue
            except Exception:
                logger.exception("checking models for new versions failed")
                continue
            if self._failing:
                logger.info("checking models for new versions works again")
            self._failing = False

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
