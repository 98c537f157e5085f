"""The hot tier: models in a replica's memory, loaded once, evicted by policy.

:class:`ModelCache` wraps any async loader ``(model_id) -> model`` — a user's
``async def get_model(self, model_id)`` or :func:`serval.models.load` — and adds:

- **single flight**, retries with backoff, timeouts, clear errors, and sizes and load
  times measured for the policy (:mod:`serval.models._loading`);
- **a memory budget that holds**: ``max_bytes`` covers the models resident *and* the
  loads in flight; each load reserves its expected bytes before it starts (and the size
  of the file it deserializes, when the loader says it), room is made by evicting ahead
  when the policy would keep the newcomer, and a model larger than the whole budget is
  a :class:`~serval.exceptions.ModelLoadError` naming both sizes
  (:mod:`serval.models._resident`, :mod:`serval.models._slots`). Loads overlap while
  they fit; ``max_concurrent_loads`` is an optional extra cap; live loads beyond
  ``max_queued_loads`` get :class:`~serval.exceptions.BackPressureError` (503); loads
  a live request waits on go before background ones (prewarm, pin, refresh);
- **budgets** by count and by bytes, **pinning** (a pinned model is never evicted) and
  **release** of evicted models (:mod:`serval.models._release`), so memory comes back;
- **statistics** (:class:`~serval.models.stats.TierStats`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable
from typing import Any

from serval.exceptions import BadRequestError, ServalError
from serval.models._loading import Loader, Loads
from serval.models._resident import Resident
from serval.models.config import CacheConfig, validated
from serval.models.sizing import Sizer
from serval.models.stats import ModelCounters, TierStats

__all__ = ["Loader", "ModelCache"]


class ModelCache:
    """Models kept in memory for one loader (see the module docs for what it adds).

    Example::

        async def load(model_id: str):
            return await serval.models.load(model_id)

        cache = ModelCache(load, CacheConfig(max_models=64, max_bytes="4GiB"))
        model = await cache.get("tenant7")
    """

    def __init__(
        self,
        loader: Loader,
        config: CacheConfig | dict[str, Any] | None = None,
        *,
        sizer: Sizer | None = None,
        name: str = "models",
    ) -> None:
        if not callable(loader):
            raise TypeError(f"ModelCache needs an async callable loader, not {loader!r}")
        self.config = validated(CacheConfig, config, "ModelCache")
        self.name = name
        self._stats = TierStats()
        self.per_model = ModelCounters()  # per model id, for metrics (serval/observability)
        self._resident = Resident(self.config, name, self._stats, self.per_model)
        self._loads = Loads(
            loader,
            self.config,
            self._resident,
            self._stats,
            self.per_model,
            sizer=sizer,
            name=name,
        )
        self._entries = self._resident.entries
        self._pinned = self._resident.pinned
        self._budget = self._resident.budget

    def __repr__(self) -> str:
        return (
            f"ModelCache({self.name!r}, models={len(self._entries)}, "
            f"bytes={self._budget.bytes_used}, {self.config!r})"
        )

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._entries

    # -- requests ----------------------------------------------------------------------

    async def get(self, model_id: str) -> Any:
        """The model, from memory or loaded now (one load however many callers wait)."""
        _check_id(model_id)
        self._budget.record_request(model_id)
        entry = self._entries.get(model_id)
        if entry is not None:
            self._stats.hits += 1
            self.per_model.hit(model_id)
            entry.hits += 1
            self._budget.hit(model_id)
            return entry.model
        self._stats.misses += 1
        self.per_model.miss(model_id)
        return await self._loads.join(model_id, live=True)

    async def prewarm(self, model_ids: Iterable[str]) -> dict[str, str]:
        """Load models in the background (live requests' loads go first); returns what
        happened to each: ``loaded``, ``already loaded``, ``not kept …`` or ``error: …``."""
        ids = list(dict.fromkeys(model_ids))
        for model_id in ids:
            _check_id(model_id)
        outcomes = await asyncio.gather(*(self._prewarm_one(m) for m in ids))
        return dict(zip(ids, outcomes, strict=True))

    async def _prewarm_one(self, model_id: str) -> str:
        if model_id in self._entries:
            return "already loaded"
        try:
            await self._loads.join(model_id, live=False)
        except ServalError as exc:
            return f"error: {exc}"
        if model_id in self._entries:
            return "loaded"
        return "not kept: worth less than the models it would evict"

    def pin(self, model_id: str) -> None:
        """Never evict ``model_id`` (it loads on first use or :meth:`prewarm`)."""
        _check_id(model_id)
        self._pinned.add(model_id)

    def unpin(self, model_id: str) -> bool:
        """Let the policy evict ``model_id`` again; whether it was pinned."""
        if model_id not in self._pinned:
            return False
        self._pinned.discard(model_id)
        return True

    @property
    def pinned(self) -> frozenset[str]:
        return frozenset(self._pinned)

    def resize(self, **limits: Any) -> list[str]:
        """Change ``max_models`` / ``max_bytes`` (``None``: no limit) of a live cache;
        models over the new limits are evicted (pinned ones stay). Returns the evicted
        ids. Evicting needs the cache's event loop; an empty cache resizes anywhere
        (a deployment's ``__init__``, say).

        Example::

            serval.models.cache_of(self.get_model).resize(max_models=200, max_bytes="8GiB")
        """
        unknown = sorted(set(limits) - {"max_models", "max_bytes"})
        if unknown:
            raise TypeError(f"resize() takes max_models and max_bytes, not {unknown}")
        self.config = validated(
            CacheConfig, {**self.config.model_dump(), **limits}, "ModelCache.resize()"
        )
        self._loads.config = self.config
        victims = self._resident.set_limits(self.config.max_models, self.config.max_bytes)
        self._loads.slots.wake()
        return victims

    async def evict(self, model_id: str) -> bool:
        """Unpin and unload ``model_id`` now; whether it was loaded."""
        self._pinned.discard(model_id)
        entry = self._resident.take(model_id)
        if entry is None:
            return False
        self._loads.sizes.forget(model_id)
        self._stats.evictions += 1
        self.per_model.gone(model_id, evicted=True)
        await self._resident.release([(model_id, entry)])
        self._loads.slots.wake()
        return True

    async def refresh(self, model_id: str) -> bool:
        """Load ``model_id`` again (a new version, say) and swap it in when it is ready;
        the old one serves until then. Whether it was loaded (otherwise nothing to do)."""
        if model_id not in self._entries:
            return False
        return await self._loads.refresh(model_id)

    async def clear(self) -> None:
        """Unload every model (pins included) and cancel loads in flight; returns once
        the cancelled loads have stopped, so none slips in afterwards."""
        await self._loads.cancel_all()
        await self._resident.clear()

    def loaded_model_ids(self, *, include_loading: bool = True) -> list[str]:
        """The models in memory (and, by default, those loading for a request), sorted.

        A background load (a prewarm: a router copying a hot model here) is left out
        until it is in memory: requests keep going to the replicas that hold the model
        meanwhile, rather than waiting here for the load."""
        ids = set(self._entries)
        if include_loading:
            ids.update(m for m, load in self._loads.in_flight.items() if load.ticket.live)
        return sorted(ids)

    def describe(self) -> dict[str, dict[str, Any]]:
        """Each model in memory: ``hits`` (since it loaded), ``bytes``, ``load_time_s``
        and ``pinned``; models still loading show ``loading: True``."""
        out: dict[str, dict[str, Any]] = {
            model_id: {
                "hits": e.hits,
                "bytes": e.size,
                "load_time_s": round(e.cost, 4),
                "pinned": model_id in self._pinned,
            }
            for model_id, e in self._entries.items()
        }
        for model_id in self._loads.in_flight:
            out.setdefault(model_id, {"loading": True, "pinned": model_id in self._pinned})
        return dict(sorted(out.items()))

    def served_version(self, model_id: str) -> tuple[str | None, str | None]:
        """``(name@version, alias)`` of the model :meth:`get` returns for ``model_id``
        now (``None`` for what the loader did not say); a model served but not kept:
        what its load produced."""
        entry = self._entries.get(model_id)
        return entry.version if entry is not None else self._loads.sizes.version(model_id)

    def stats(self) -> TierStats:
        """A snapshot of this cache's counters."""
        slots = self._loads.slots
        return dataclasses.replace(
            self._stats,
            bytes_used=self._budget.bytes_used,
            entries=len(self._entries),
            bytes_loading=slots.reserved,
            bytes_peak=slots.peak,
        )


def _check_id(model_id: object) -> None:
    if not isinstance(model_id, str):
        raise TypeError(f"a model id must be a str, got {type(model_id).__name__}")
    if not model_id:
        raise BadRequestError(
            "no model id: send the 'serve_multiplexed_model_id' header or use "
            "handle.options(multiplexed_model_id=...)"
        )
