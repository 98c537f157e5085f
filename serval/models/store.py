"""The model store: warm and cold tiers behind one ``load(model_id)``.

::

    load("tenant7")
      ├─ registry.resolve      "tenant7" → tenant7@3      (unknown → ModelNotFoundError)
      ├─ warm.get(tenant7@3)   signed blob → verified     (tampered/unreadable → discarded)
      │    └─ deserialize      ok → return the model      (fails → discard, go on)
      ├─ registry.fetch        the model file             (cold)
      ├─ expect(file size)     the calling cache reserves the memory the model needs
      ├─ deserialize           at most one per core at once (CPU-bound; fetches that
      │                        wait on I/O overlap freely); fails → ModelLoadError
      │                        naming the model and the cause;
      │                        nothing is cached
      └─ warm.put, in the background, only after the model deserialized

Versions are immutable, so warm entries never go stale: a new version is a new key.
The hot tier (:class:`~serval.models.cache.ModelCache`) sits above this, in replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

from serval.exceptions import ModelLoadError, ModelNotFoundError
from serval.models._served import alias_of, expect, note
from serval.models.config import StoreConfig, validated
from serval.models.loaders import ArtifactLoader, load_artifact, loader_for
from serval.models.registry import Artifact, ModelRef, Registry, make_registry
from serval.models.stats import TierStats
from serval.models.tiers import WarmTier, make_warm_tier
from serval.observability.process import LOAD_LATENCY

__all__ = ["ModelStore"]

logger = logging.getLogger("serval.models")


class ModelStore:
    """Loads models from the warm tier, else from the registry (module docs).

    Example::

        store = ModelStore(DirectoryRegistry("/srv/models"), WarmTier(DiskTier(d), max_bytes=...))
        model = await store.load("iris@production")
        # or, from settings:
        store = ModelStore.from_config(StoreConfig(registry="/srv/models"))
    """

    def __init__(
        self,
        registry: Registry,
        warm: WarmTier | None = None,
        *,
        loader: str | ArtifactLoader | None = None,
    ) -> None:
        self.registry = registry
        self.warm = warm
        self.loader = loader
        self._cold = TierStats()
        self._puts: set[asyncio.Task[bool]] = set()
        self._served: dict[str, ModelRef] = {}  # model id -> the version last loaded for it
        self._cores: asyncio.Semaphore | None = None  # deserializations at once: one a core

    @classmethod
    def from_config(cls, config: StoreConfig | dict[str, Any]) -> ModelStore:
        """The store ``config`` describes; imports happen here, in the process using it."""
        cfg = validated(StoreConfig, config, "serval.models")
        registry = make_registry(cfg.registry)
        return cls(registry, make_warm_tier(cfg, registry.identity), loader=cfg.loader)

    def __repr__(self) -> str:
        return f"ModelStore({self.registry!r}, warm={self.warm!r})"

    async def load(self, model_id: str) -> Any:
        """The model ``model_id`` names, deserialized (see the module docs)."""
        ref = await self.resolve(model_id)
        model = await self._load_ref(model_id, ref)
        self._served[model_id] = ref
        note(str(ref), alias_of(model_id, ref.version))  # the cache keeps it with the model
        return model

    def served_version(self, model_id: str) -> ModelRef | None:
        """The version :meth:`load` last returned for ``model_id`` (``None``: never)."""
        return self._served.get(model_id)

    def forget_served(self, keep: set[str]) -> None:
        """Forget the versions served for ids other than ``keep`` (those no longer held
        anywhere), so the record stays as small as the caches."""
        for model_id in self._served.keys() - keep:
            del self._served[model_id]

    async def _load_ref(self, model_id: str, ref: ModelRef) -> Any:
        started = time.perf_counter()
        artifact = await self._from_warm(ref)
        if artifact is not None:
            LOAD_LATENCY.observe(("warm",), time.perf_counter() - started)
            await expect(len(artifact.data))  # the cache makes room before it is built
            try:
                return await self._deserialize(model_id, artifact)
            except ModelLoadError as exc:
                logger.warning("warm copy of %s does not load (%s); refetching", ref, exc.cause)
                assert self.warm is not None
                await self.warm.discard(str(ref))
        started = time.perf_counter()
        artifact = await self._fetch(model_id, ref)
        fetch_s = time.perf_counter() - started
        await expect(len(artifact.data))
        model = await self._deserialize(model_id, artifact)
        self._put_warm_later(artifact, fetch_s)
        return model

    async def resolve(self, model_id: str) -> ModelRef:
        """The concrete version ``model_id`` names."""
        with self._registry_errors(model_id, f"the registry {self.registry.identity}"):
            return await self.registry.resolve(model_id)

    async def fill_warm(self, model_ids: Iterable[str]) -> dict[str, str]:
        """Fetch models into the warm tier without loading them here (before a rollout,
        say); returns what happened to each."""
        if self.warm is None:
            return {m: "error: no warm tier is configured" for m in model_ids}
        out: dict[str, str] = {}
        for model_id in dict.fromkeys(model_ids):
            try:
                ref = await self.resolve(model_id)
                started = time.perf_counter()
                artifact = await self._fetch(model_id, ref)
                stored = await self.warm.put(
                    str(ref), artifact.to_bytes(), time.perf_counter() - started
                )
                out[model_id] = f"cached {ref}" if stored else f"not cached {ref}"
            except (ModelNotFoundError, ModelLoadError) as exc:
                out[model_id] = f"error: {exc}"
        return out

    async def flush(self) -> None:
        """Wait for the warm-tier writes started so far."""
        while self._puts:
            await asyncio.gather(*list(self._puts), return_exceptions=True)

    def stats(self) -> tuple[TierStats, TierStats]:
        """``(warm, cold)`` counters (warm is empty when there is no warm tier)."""
        warm = self.warm.stats() if self.warm is not None else TierStats()
        return warm, dataclasses.replace(self._cold)

    async def close(self) -> None:
        """Finish pending warm writes and close connections."""
        await self.flush()
        if self.warm is not None:
            await self.warm.close()
        await self.registry.close()

    async def _from_warm(self, ref: ModelRef) -> Artifact | None:
        if self.warm is None:
            return None
        payload = await self.warm.get(str(ref))
        if payload is None:
            return None
        try:
            artifact = Artifact.from_bytes(payload)
        except ValueError as exc:
            logger.warning("warm copy of %s is unreadable (%s); refetching", ref, exc)
            await self.warm.discard(str(ref))
            return None
        if artifact.ref != ref:
            logger.warning("warm entry for %s holds %s; refetching", ref, artifact.ref)
            await self.warm.discard(str(ref))
            return None
        return artifact

    async def _fetch(self, model_id: str, ref: ModelRef) -> Artifact:
        started = time.perf_counter()
        with self._registry_errors(model_id, f"fetching {ref} from {self.registry.identity}"):
            artifact = await self.registry.fetch(ref)
        self._cold.hits += 1
        self._cold.loads += 1
        self._cold.load_time_s += time.perf_counter() - started
        LOAD_LATENCY.observe(("cold",), time.perf_counter() - started)
        self._cold.bytes_loaded += len(artifact.data)
        return artifact

    @contextlib.contextmanager
    def _registry_errors(self, model_id: str, what: str) -> Iterator[None]:
        """The one place registry errors are translated: unknown stays
        :class:`ModelNotFoundError` (404), anything else is a :class:`ModelLoadError`
        naming the model and the cause; both are counted."""
        try:
            yield
        except ModelNotFoundError as exc:
            self._cold.misses += 1
            # The answer names the model, not where the registry lives (its path or URL).
            text = str(exc)
            if self.registry.identity and self.registry.identity in text:
                logger.info("%s", text)
                raise ModelNotFoundError(
                    text.replace(self.registry.identity, "the registry")
                ) from None
            raise
        except Exception as exc:
            self._cold.load_failures += 1
            raise ModelLoadError(model_id, f"{what} failed: {_text(exc)}") from exc

    async def _deserialize(self, model_id: str, artifact: Artifact) -> Any:
        try:
            loader = loader_for(artifact.filename, self.loader)
        except ValueError as exc:
            raise ModelLoadError(model_id, f"{artifact.ref}: {exc}") from None
        if self._cores is None:
            self._cores = asyncio.Semaphore(os.cpu_count() or 1)
        try:
            async with self._cores:
                return await asyncio.to_thread(load_artifact, artifact, loader)
        except Exception as exc:
            name = getattr(loader, "__name__", repr(loader))
            raise ModelLoadError(
                model_id,
                f"{artifact.ref}: {artifact.filename!r} does not load with {name}: {_text(exc)}",
            ) from exc

    def _put_warm_later(self, artifact: Artifact, fetch_s: float) -> None:
        if self.warm is None:
            return
        task = asyncio.get_running_loop().create_task(
            self.warm.put(str(artifact.ref), artifact.to_bytes(), fetch_s)
        )
        self._puts.add(task)
        task.add_done_callback(self._put_done)

    def _put_done(self, task: asyncio.Task[bool]) -> None:
        self._puts.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("warm-tier write failed", exc_info=task.exception())


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
