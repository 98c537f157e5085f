"""The hot tier: models in a replica's memory, loaded once, evicted by policy.

:class:`ModelCache` wraps any async loader ``(model_id) -> model`` — a user's
``async def get_model(self, model_id)`` or :func:`serval.models.load` — and adds:

- **single flight**: concurrent requests for a model that is not loaded share one load;
- **loads bounded by memory**: loads overlap while the bytes being loaded (each load
  reserves its model's last measured size, else the largest measured so far) plus the
  bytes resident fit the budget; past it they go one at a time, as in a sequential
  cache, so at most one model beyond the budget is ever held (:mod:`serval.models._slots`);
  ``max_concurrent_loads`` is an optional extra cap; live loads beyond
  ``max_queued_loads`` get :class:`~serval.exceptions.BackPressureError` (503); loads
  a live request waits on go before background ones (prewarm, pin, refresh). A model
  larger than ``max_bytes`` is a :class:`~serval.exceptions.ModelLoadError` naming
  both sizes (remembered: it is not loaded again until evicted or refreshed);
- **failure handling**: a failed load is retried with exponential backoff, never cached,
  and answers every waiting caller with :class:`~serval.exceptions.ModelLoadError`
  naming the model and the cause; an unknown model raises
  :class:`~serval.exceptions.ModelNotFoundError` at once (no retries); loads time out;
- **budgets** by count and by bytes, with the size *measured* after the load
  (:mod:`serval.models.sizing`) and the load time measured too, for the policy;
- **pinning** (a pinned model is never evicted) and **release** of evicted models
  (:mod:`serval.models._release`), so memory actually comes back;
- **statistics** (:class:`~serval.models.stats.TierStats`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from serval.exceptions import (
    BadRequestError,
    ConfigError,
    ModelLoadError,
    ModelNotFoundError,
    ServalError,
)
from serval.models import stats as _counters
from serval.models._release import Reclaimer, release
from serval.models._served import LoadedVersion, recording
from serval.models._sizes import format_bytes
from serval.models._slots import LoadSlots, SizeRecord, Ticket, machine_budget
from serval.models.config import CacheConfig, validated
from serval.models.eviction import Budget, make_admission, make_policy
from serval.models.sizing import Sizer, SizeWalk, measure
from serval.models.stats import ModelCounters, TierStats
from serval.observability.process import LOAD_LATENCY

__all__ = ["Loader", "ModelCache"]

logger = logging.getLogger("serval.models")

Loader = Callable[[str], Awaitable[Any]]
_AS_IS = (ModelNotFoundError, BadRequestError)  # raised to callers unchanged, not retried
_NO_RETRY = (ConfigError, TypeError)  # a retry would fail the same way
# Objects a model's size walk visits on the event loop before the rest goes to a thread
# (a scikit-learn estimator is ~50; 1,000 take well under a millisecond).
_INLINE_WALK_OBJECTS = 1_000


@dataclass(eq=False)
class _Entry:
    model: Any
    size: int
    cost: float  # seconds the load took
    hits: int = 0  # requests it answered from memory
    version: tuple[str | None, str | None] = (None, None)  # (name@version, alias) it is


@dataclass(eq=False)
class _Load:
    task: asyncio.Task[Any]
    ticket: Ticket


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
        self._loader = loader
        self._sizer = sizer
        self._entries: dict[str, _Entry] = {}
        self._loading: dict[str, _Load] = {}
        self._refreshing: dict[str, asyncio.Task[bool]] = {}
        self._pinned: set[str] = set()
        self._budget = Budget(
            make_policy(self.config.policy),
            max_entries=self.config.max_models,
            max_bytes=self.config.max_bytes,
            admission=make_admission(self.config.admission) if self.config.admission else None,
        )
        self._sizes = SizeRecord()  # measured sizes, for the bytes a load reserves
        self._slots = LoadSlots(
            self.config.max_concurrent_loads,
            fits=self._room_for,
            estimate=self._sizes.estimate,
            max_waiting=self.config.max_queued_loads,
        )
        self._stats = TierStats()
        self.per_model = ModelCounters()  # per model id, for metrics (serval/observability)
        self._reclaimer = Reclaimer()  # gc + malloc_trim, at most once a second
        self._background: set[asyncio.Task[None]] = set()

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
        return await self._join(model_id, live=True)

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
            await self._join(model_id, live=False)
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
        self._budget.max_entries = self.config.max_models
        self._budget.max_bytes = self.config.max_bytes
        victims = self._budget.over_budget(protected=self._pinned)
        self._evict_later(victims)
        self._slots.wake()
        return victims

    async def evict(self, model_id: str) -> bool:
        """Unpin and unload ``model_id`` now; whether it was loaded."""
        self._pinned.discard(model_id)
        entry = self._entries.pop(model_id, None)
        if entry is None:
            return False
        self._budget.remove(model_id)
        self._sizes.forget(model_id)
        self._stats.evictions += 1
        self.per_model.gone(model_id, evicted=True)
        await self._release([(model_id, entry)])
        self._slots.wake()
        return True

    async def refresh(self, model_id: str) -> bool:
        """Load ``model_id`` again (a new version, say) and swap it in when it is ready;
        the old one serves until then. Whether it was loaded (otherwise nothing to do)."""
        if model_id not in self._entries:
            return False
        self._sizes.forget(model_id)
        task = self._refreshing.get(model_id)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._refresh(model_id))
            self._refreshing[model_id] = task
            task.add_done_callback(lambda _: self._refreshing.pop(model_id, None))
        return await asyncio.shield(task)

    async def clear(self) -> None:
        """Unload every model (pins included) and cancel loads in flight; returns once
        the cancelled loads have stopped, so none slips in afterwards."""
        stopping = [load.task for load in self._loading.values()]
        stopping += self._refreshing.values()
        for task in stopping:
            task.cancel()
        await asyncio.gather(*stopping, return_exceptions=True)
        self._pinned.clear()
        leaving = list(self._entries.items())
        self._entries.clear()
        for model_id, _ in leaving:
            self._budget.remove(model_id)
            self.per_model.gone(model_id)
        await self._release(leaving)

    def loaded_model_ids(self, *, include_loading: bool = True) -> list[str]:
        """The models in memory (and, by default, those loading), sorted."""
        ids = set(self._entries)
        if include_loading:
            ids.update(self._loading)
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
        for model_id in self._loading:
            out.setdefault(model_id, {"loading": True, "pinned": model_id in self._pinned})
        return dict(sorted(out.items()))

    def served_version(self, model_id: str) -> tuple[str | None, str | None]:
        """``(name@version, alias)`` of the model :meth:`get` returns for ``model_id``
        now (``None`` for what the loader did not say); a model served but not kept:
        what its load produced."""
        entry = self._entries.get(model_id)
        return entry.version if entry is not None else self._sizes.version(model_id)

    def stats(self) -> TierStats:
        """A snapshot of this cache's counters."""
        return dataclasses.replace(
            self._stats, bytes_used=self._budget.bytes_used, entries=len(self._entries)
        )

    # -- loading -----------------------------------------------------------------------

    async def _join(self, model_id: str, *, live: bool) -> Any:
        load = self._loading.get(model_id)
        if load is None:
            known = self._sizes.get(model_id)
            if known is not None:
                self._refuse_if_too_large(model_id, known)
            ticket = Ticket(live=live, nbytes=self._sizes.estimate(model_id), key=model_id)
            task = asyncio.get_running_loop().create_task(
                self._load(model_id, ticket), name=f"serval-load:{model_id}"
            )
            load = self._loading[model_id] = _Load(task, ticket)
            self.per_model.loading(model_id, True)
            task.add_done_callback(functools.partial(self._load_done, model_id, load))
        elif live:
            self._slots.promote(load.ticket)
        # Shielded: a caller that goes away does not cancel the load others wait for.
        return await asyncio.shield(load.task)

    def _load_done(self, model_id: str, load: _Load, task: asyncio.Task[Any]) -> None:
        if self._loading.get(model_id) is load:
            del self._loading[model_id]
            self.per_model.loading(model_id, False)
        if not task.cancelled():
            task.exception()  # retrieved here: every caller may have gone away

    async def _load(self, model_id: str, ticket: Ticket) -> Any:
        model, cost, version = await self._load_with_retries(model_id, ticket)
        try:  # the load's bytes stay reserved until the model is in the cache, or gone
            entry = _Entry(model, await self._measure(model_id, model), cost)
            entry.version = (version.version, version.alias)
            self._sizes.record_version(model_id, version.version, version.alias)
            self._loaded(model_id, cost, entry)
            logger.info("loaded model %r in %.3fs (%d bytes)", model_id, cost, entry.size)
            if model_id not in self._pinned:
                self._refuse_if_too_large(model_id, entry.size, entry)
            await self._insert(model_id, entry)
        finally:
            self._slots.release(ticket)
        return model

    def _refuse_if_too_large(self, model_id: str, size: int, entry: _Entry | None = None) -> None:
        limit = self.config.max_bytes
        if limit is None or size <= limit or model_id in self._pinned:
            return
        self._stats.rejected += 1
        if entry is not None:
            entry.model = None  # not kept: the caller's reference is the last one
        raise ModelLoadError(
            model_id,
            f"it takes {format_bytes(size)} ({size} bytes) in memory, more than this "
            f"cache's whole budget max_bytes={format_bytes(limit)} ({limit} bytes): "
            "raise max_bytes or make the model smaller",
        )

    async def _load_with_retries(
        self, model_id: str, ticket: Ticket
    ) -> tuple[Any, float, LoadedVersion]:
        attempts = self.config.load_retries + 1
        cause: Exception = RuntimeError("no attempt was made")
        for attempt in range(1, attempts + 1):
            await self._slots.acquire(ticket)
            loaded = False
            try:
                started = time.perf_counter()
                model, version = await self._call_loader(model_id)
                loaded = True  # the caller releases the slot once the model is placed
                return model, time.perf_counter() - started, version
            except _AS_IS:
                self._stats.load_failures += 1
                self.per_model.count(model_id, _counters.LOAD_FAILURES)
                raise
            except Exception as exc:
                cause = exc
            finally:
                if not loaded:
                    self._slots.release(ticket)
            if isinstance(cause, _NO_RETRY):
                attempts = attempt
                break
            if attempt < attempts:
                delay = self.config.retry_backoff_s * 2 ** (attempt - 1)
                logger.warning(
                    "loading model %r failed (attempt %d of %d): %s; retrying in %.2fs",
                    model_id,
                    attempt,
                    attempts,
                    _describe(cause, self.config),
                    delay,
                )
                await asyncio.sleep(delay)
        self._stats.load_failures += 1
        self.per_model.count(model_id, _counters.LOAD_FAILURES)
        text = _describe(cause, self.config)
        if attempts > 1:
            text += f" (after {attempts} attempts)"
        logger.error("model %r failed to load: %s", model_id, text)
        raise ModelLoadError(model_id, text) from cause

    async def _call_loader(self, model_id: str) -> tuple[Any, LoadedVersion]:
        with recording() as loaded:  # serval.models.load notes the version it resolved
            pending = self._loader(model_id)
            if not isinstance(pending, Awaitable):
                raise TypeError(
                    f"the loader of ModelCache {self.name!r} returned "
                    f"{type(pending).__name__}, not an awaitable: give it an 'async def' function"
                )
            model = await asyncio.wait_for(pending, self.config.load_timeout_s)
        return model, loaded

    async def _measure(self, model_id: str, model: Any) -> int:
        try:
            if self._sizer is None and not _has_size_hook(model):
                # The estimate walks the object graph: a small model in place (a thread
                # hop costs more than its walk), the rest of a large one off the loop.
                walk = SizeWalk(model)
                if not walk.step(_INLINE_WALK_OBJECTS):
                    await asyncio.to_thread(walk.step)
                return walk.total
            # A sizer or a __serval_nbytes__ hook answers at once: no thread hop.
            return measure(model, self._sizer)
        except Exception as exc:
            raise ModelLoadError(model_id, f"measuring its size raised {exc!r}") from exc

    async def _refresh(self, model_id: str) -> bool:
        ticket = Ticket(live=False, nbytes=self._sizes.estimate(model_id), key=model_id)
        model, cost, version = await self._load_with_retries(model_id, ticket)
        try:
            entry = _Entry(model, await self._measure(model_id, model), cost)
            entry.version = (version.version, version.alias)
            self._loaded(model_id, cost, entry)
            old = self._entries.pop(model_id, None)
            if old is not None:
                self._budget.remove(model_id)
                self.per_model.gone(model_id)
            await self._insert(model_id, entry)
            if old is not None:
                await self._release([(model_id, old)])
        finally:
            self._slots.release(ticket)
        return True

    def _loaded(self, model_id: str, cost: float, entry: _Entry) -> None:
        self._stats.loads += 1
        self._stats.load_time_s += cost
        self._stats.bytes_loaded += entry.size
        self._sizes.record(model_id, entry.size)
        self.per_model.count(model_id, _counters.LOADS)
        LOAD_LATENCY.observe(("hot",), cost)

    def _count_evictions(self, leaving: list[tuple[str, _Entry]]) -> None:
        for model_id, _ in leaving:
            self.per_model.gone(model_id, evicted=True)

    # -- room ----------------------------------------------------------------------------

    async def _insert(self, model_id: str, entry: _Entry) -> None:
        pinned = model_id in self._pinned
        decision = self._budget.admit(
            model_id, entry.size, entry.cost, protected=self._pinned, force=pinned
        )
        if not decision.admitted:
            self._stats.rejected += 1
            logger.info(
                "model %r serves its request but is not kept: %s", model_id, decision.reason
            )
            return
        self._entries[model_id] = entry
        self.per_model.resident(model_id, entry.size, entry.cost)
        leaving = [(v, self._entries.pop(v)) for v in decision.victims]
        self._stats.evictions += len(leaving)
        self._count_evictions(leaving)
        if pinned and self._over_limits():
            logger.warning(
                "cache %r is over its limits (%d models, %d bytes) because pinned models "
                "do not fit: unpin some or raise max_bytes / max_models",
                self.name,
                len(self._entries),
                self._budget.bytes_used,
            )
        await self._release(leaving)

    def _room_for(self, reserved: int) -> bool:
        """Whether ``reserved`` bytes of loads fit beside the resident models. Nothing is
        evicted ahead of a load (the policy decides when the model is in): past the
        budget, loads go one at a time, as in a cache that loads sequentially."""
        limit = self.config.max_bytes or machine_budget()
        return self._budget.bytes_used + reserved <= limit

    def _evict_later(self, victims: list[str]) -> None:
        leaving = [(v, self._entries.pop(v)) for v in victims if v in self._entries]
        if leaving:
            self._stats.evictions += len(leaving)
            self._count_evictions(leaving)
            task = asyncio.get_running_loop().create_task(self._release(leaving))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def _over_limits(self) -> bool:
        cfg = self.config
        return (cfg.max_models is not None and len(self._entries) > cfg.max_models) or (
            cfg.max_bytes is not None and self._budget.bytes_used > cfg.max_bytes
        )

    async def _release(self, leaving: list[tuple[str, _Entry]]) -> None:
        for model_id, entry in leaving:
            logger.info("unloading model %r (%d bytes)", model_id, entry.size)
            await release(model_id, entry.model)
            entry.model = None
        if leaving:
            self._reclaimer.request(sum(entry.size for _, entry in leaving))


def _has_size_hook(model: Any) -> bool:
    return callable(getattr(model, "__serval_nbytes__", None)) and not isinstance(model, type)


def _check_id(model_id: object) -> None:
    if not isinstance(model_id, str):
        raise TypeError(f"a model id must be a str, got {type(model_id).__name__}")
    if not model_id:
        raise BadRequestError(
            "no model id: send the 'serve_multiplexed_model_id' header or use "
            "handle.options(multiplexed_model_id=...)"
        )


def _describe(exc: BaseException, config: CacheConfig) -> str:
    if isinstance(exc, ModelLoadError):
        return exc.cause
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return f"timed out after {config.load_timeout_s}s (load_timeout_s)"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
