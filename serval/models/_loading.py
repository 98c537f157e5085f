"""Getting a model into a cache: one load however many callers wait, within memory.

- **single flight**: concurrent requests for a model that is not loaded share one load;
- **memory first**: a load reserves the bytes it is expected to take before it starts
  (its last size, else the largest any load took) and, when the loader says how big
  the file it is about to deserialize is (:func:`serval.models._served.expect`; the
  model store does), reserves that too before the model is built; room is made as
  :mod:`serval.models._resident` describes, so resident plus loading bytes stay within
  the budget. A model whose file or measured size is larger than the whole budget is a
  :class:`~serval.exceptions.ModelLoadError` naming both sizes (remembered: it is not
  loaded again until evicted or refreshed);
- **failure handling**: a failed load is retried with exponential backoff, never cached,
  and answers every waiting caller with :class:`~serval.exceptions.ModelLoadError`
  naming the model and the cause; an unknown model raises
  :class:`~serval.exceptions.ModelNotFoundError` at once (no retries); loads time out;
- **measuring**: the size (:mod:`serval.models.sizing`) and the load time, for the
  policy and for the next reservation.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from serval.exceptions import (
    BadRequestError,
    ConfigError,
    ModelLoadError,
    ModelNotFoundError,
)
from serval.models import stats as _counters
from serval.models._resident import Entry, Resident
from serval.models._served import LoadedVersion, recording
from serval.models._sizes import format_bytes
from serval.models._slots import LoadSlots, SizeRecord, Ticket
from serval.models.config import CacheConfig
from serval.models.sizing import Sizer, SizeWalk, measure
from serval.models.stats import ModelCounters, TierStats
from serval.observability.process import LOAD_LATENCY

__all__ = ["Loader", "Loads"]

logger = logging.getLogger("serval.models")

Loader = Callable[[str], Awaitable[Any]]
_AS_IS = (ModelNotFoundError, BadRequestError)  # raised to callers unchanged, not retried
# Objects a model's size walk visits on the event loop before the rest goes to a thread
# (a scikit-learn estimator is ~50; 1,000 take well under a millisecond).
_INLINE_WALK_OBJECTS = 1_000
# While a file deserializes, its bytes and the model built from them are both in memory.
_DESERIALIZE_FACTOR = 2


_NO_RETRY = (ConfigError, TypeError)  # a retry would fail the same way


def _too_large(model_id: str, text: str) -> ModelLoadError:
    """Larger than the whole budget: retrying cannot help."""
    error = ModelLoadError(model_id, text)
    error.__dict__["_serval_final"] = True
    return error


@dataclass(eq=False)
class _Load:
    task: asyncio.Task[Any]
    ticket: Ticket


class Loads:
    """The loads of one cache (see the module docs).

    Example (what :class:`~serval.models.cache.ModelCache` does)::

        loads = Loads(loader, config, resident, stats, counters, sizer=None, name="models")
        model = await loads.join("tenant7", live=True)
    """

    def __init__(
        self,
        loader: Loader,
        config: CacheConfig,
        resident: Resident,
        stats: TierStats,
        counters: ModelCounters,
        *,
        sizer: Sizer | None,
        name: str,
    ) -> None:
        self.config = config
        self.name = name
        self.sizes = SizeRecord()  # what a load of each model reserves
        self.slots = LoadSlots(
            config.max_concurrent_loads,
            room=resident.room,
            estimate=self.sizes.estimate,
            max_waiting=config.max_queued_loads,
            used=lambda: resident.bytes_used,
        )
        self.in_flight: dict[str, _Load] = {}
        self._refreshing: dict[str, asyncio.Task[bool]] = {}
        self._loader = loader
        self._sizer = sizer
        self._resident = resident
        self._stats = stats
        self._counters = counters

    async def join(self, model_id: str, *, live: bool) -> Any:
        """The model, from the load in flight or a new one (``live``: a request waits)."""
        load = self.in_flight.get(model_id)
        if load is None:
            known = self.sizes.get(model_id)
            if known is not None:
                self._refuse_if_too_large(model_id, known)
            ticket = Ticket(
                live=live,
                nbytes=self.sizes.estimate(model_id),
                key=model_id,
                force=model_id in self._resident.pinned,
            )
            task = asyncio.get_running_loop().create_task(
                self._load(model_id, ticket), name=f"serval-load:{model_id}"
            )
            load = self.in_flight[model_id] = _Load(task, ticket)
            self._counters.loading(model_id, True)
            task.add_done_callback(functools.partial(self._load_done, model_id, load))
        elif live:
            self.slots.promote(load.ticket)
        # Shielded: a caller that goes away does not cancel the load others wait for.
        return await asyncio.shield(load.task)

    async def refresh(self, model_id: str) -> bool:
        """Load ``model_id`` again and swap it in when ready (one refresh at a time)."""
        self.sizes.forget(model_id)
        task = self._refreshing.get(model_id)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._refresh(model_id))
            self._refreshing[model_id] = task
            task.add_done_callback(lambda _: self._refreshing.pop(model_id, None))
        return await asyncio.shield(task)

    async def cancel_all(self) -> None:
        """Cancel the loads and refreshes in flight; returns once they stopped."""
        stopping = [load.task for load in self.in_flight.values()]
        stopping += self._refreshing.values()
        for task in stopping:
            task.cancel()
        await asyncio.gather(*stopping, return_exceptions=True)

    def _load_done(self, model_id: str, load: _Load, task: asyncio.Task[Any]) -> None:
        if self.in_flight.get(model_id) is load:
            del self.in_flight[model_id]
            self._counters.loading(model_id, False)
        if not task.cancelled():
            task.exception()  # retrieved here: every caller may have gone away

    async def _load(self, model_id: str, ticket: Ticket) -> Any:
        model, cost, version = await self._load_with_retries(model_id, ticket)
        try:  # the load's bytes stay reserved until the model is in the cache, or gone
            entry = Entry(model, await self._measure(model_id, model), cost)
            entry.version = (version.version, version.alias)
            self.sizes.record_version(model_id, version.version, version.alias)
            self._loaded(model_id, cost, entry)
            logger.info("loaded model %r in %.3fs (%d bytes)", model_id, cost, entry.size)
            if model_id not in self._resident.pinned:
                self._refuse_if_too_large(model_id, entry.size, entry)
            self.slots.settle(ticket)  # its reservation becomes the entry's bytes
            await self._resident.insert(model_id, entry, ticket)
            self.slots.note_peak()
        finally:
            self.slots.release(ticket)
        return model

    async def _refresh(self, model_id: str) -> bool:
        # The old version serves until the new one is in: both are in memory meanwhile.
        ticket = Ticket(live=False, nbytes=self.sizes.estimate(model_id), key=model_id)
        ticket.force = True  # it replaces a model already worth keeping
        model, cost, version = await self._load_with_retries(model_id, ticket)
        try:
            entry = Entry(model, await self._measure(model_id, model), cost)
            entry.version = (version.version, version.alias)
            self._loaded(model_id, cost, entry)
            old = self._resident.take(model_id)
            if old is not None:
                self._counters.gone(model_id)
            self.slots.settle(ticket)
            await self._resident.insert(model_id, entry, ticket)
            self.slots.note_peak()
            if old is not None:
                await self._resident.release([(model_id, old)])
        finally:
            self.slots.release(ticket)
        return True

    def _refuse_if_too_large(self, model_id: str, size: int, entry: Entry | None = None) -> None:
        limit = self._resident.budget.max_bytes
        if limit is None or size <= limit or model_id in self._resident.pinned:
            return
        self._stats.rejected += 1
        if entry is not None:
            entry.model = None  # not kept: the caller's reference is the last one
        raise _too_large(
            model_id,
            f"it takes {format_bytes(size)} ({size} bytes) in memory, more than this "
            f"cache's whole budget max_bytes={format_bytes(limit)} ({limit} bytes): "
            "raise max_bytes or make the model smaller",
        )

    async def _expect(self, model_id: str, ticket: Ticket, file_bytes: int) -> None:
        """The loader is about to deserialize ``file_bytes``: reserve what that takes."""
        limit = self._resident.budget.max_bytes
        if limit is not None and file_bytes > limit and model_id not in self._resident.pinned:
            self._stats.rejected += 1
            self.sizes.record(model_id, file_bytes)  # refused at once next time
            raise _too_large(
                model_id,
                f"its file takes {format_bytes(file_bytes)} ({file_bytes} bytes), more "
                f"than this cache's whole budget max_bytes={format_bytes(limit)} "
                f"({limit} bytes): raise max_bytes or make the model smaller",
            )
        need = min(_DESERIALIZE_FACTOR * file_bytes, self._resident.limit)
        self.sizes.record_need(model_id, need)
        await self.slots.grow(ticket, need)

    async def _load_with_retries(
        self, model_id: str, ticket: Ticket
    ) -> tuple[Any, float, LoadedVersion]:
        attempts = self.config.load_retries + 1
        cause: Exception = RuntimeError("no attempt was made")
        for attempt in range(1, attempts + 1):
            await self.slots.acquire(ticket)
            loaded = False
            try:
                started = time.perf_counter()
                model, version = await self._call_loader(model_id, ticket)
                loaded = True  # the caller releases the slot once the model is placed
                return model, time.perf_counter() - started, version
            except _AS_IS:
                self._failed(model_id)
                raise
            except Exception as exc:
                cause = exc
            finally:
                if not loaded:
                    self.slots.release(ticket)
            if isinstance(cause, _NO_RETRY) or cause.__dict__.get("_serval_final"):
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
        self._failed(model_id)
        text = _describe(cause, self.config)
        if attempts > 1:
            text += f" (after {attempts} attempts)"
        logger.error("model %r failed to load: %s", model_id, text)
        raise ModelLoadError(model_id, text) from cause

    def _failed(self, model_id: str) -> None:
        self._stats.load_failures += 1
        self._counters.count(model_id, _counters.LOAD_FAILURES)

    async def _call_loader(self, model_id: str, ticket: Ticket) -> tuple[Any, LoadedVersion]:
        # serval.models.load notes the version it resolved and the file size it loads.
        with recording(functools.partial(self._expect, model_id, ticket)) as loaded:
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

    def _loaded(self, model_id: str, cost: float, entry: Entry) -> None:
        self._stats.loads += 1
        self._stats.load_time_s += cost
        self._stats.bytes_loaded += entry.size
        self.sizes.record(model_id, entry.size)
        self._counters.count(model_id, _counters.LOADS)
        LOAD_LATENCY.observe(("hot",), cost)


def _has_size_hook(model: Any) -> bool:
    return callable(getattr(model, "__serval_nbytes__", None)) and not isinstance(model, type)


def _describe(exc: BaseException, config: CacheConfig) -> str:
    if isinstance(exc, ModelLoadError):
        return exc.cause
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return f"timed out after {config.load_timeout_s}s (load_timeout_s)"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
