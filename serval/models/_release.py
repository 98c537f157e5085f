"""Letting go of an evicted model, so that its memory actually comes back.

1. ``close()`` is called if the model has one (awaited if it returns an awaitable);
   else an ``async def __del__`` is awaited (Ray Serve's unload hook), once. A plain
   ``__del__`` runs by itself when the last reference goes.
2. The cache drops its references; requests still using the model keep it alive until
   they finish, so nothing is pulled from under them (a ``close()`` that frees resources
   should tolerate that, or leave the freeing to ``__del__``).
3. :func:`reclaim_memory` runs the cycle collector (models are often reference cycles:
   torch modules, closures) and, on glibc, ``malloc_trim`` so that freed heap pages go
   back to the operating system rather than staying in the allocator's free lists.

Both walk the whole process (every object, every malloc arena) on the event loop, so a
cache asks a :class:`Reclaimer` instead of calling them after each eviction: under
steady eviction traffic that would run per request (it cut the many-models benchmark
from ~450 to ~170 requests/s, p50 from 2 to 34 ms). The reclaimer runs at most once per
``interval_s``, still runs after the last eviction of a burst (so the memory does come
back), and trims only when enough bytes were freed since the last trim.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import inspect
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Reclaimer", "reclaim_memory", "release"]

logger = logging.getLogger("serval.models")


async def release(model_id: str, model: Any) -> None:
    """Run ``model``'s unload hook; errors are logged, never raised (it is leaving)."""
    try:
        close = getattr(model, "close", None)
        if callable(close) and not isinstance(model, type):
            result = close()
            if inspect.isawaitable(result):
                await result
        elif inspect.iscoroutinefunction(getattr(type(model), "__del__", None)):
            await model.__del__()
            _disarm_async_del(model)
    except Exception:
        logger.exception("unloading model %r raised; its memory is released anyway", model_id)


def _disarm_async_del(model: Any) -> None:
    # Python calls __del__ again when the object is collected; an async one would then
    # make a coroutine nobody awaits (a RuntimeWarning per evicted model). Ray Serve's
    # `model.__del__ = lambda: None` does not help: finalizers are looked up on the
    # type. So the instance moves to a subclass whose __del__ does nothing.
    cls = type(model)
    quiet = _QUIET.get(cls)
    if quiet is None:
        names = {"__module__": cls.__module__, "__qualname__": cls.__qualname__}
        quiet = _QUIET[cls] = type(cls.__name__, (cls,), {**names, "__del__": _no_del})
    try:
        model.__class__ = quiet
    except TypeError:  # an extension type or __slots__ layout: nothing safe to do
        pass


def _no_del(self: Any) -> None:
    pass


_QUIET: dict[type, type] = {}  # model class -> its quiet subclass (few: one per class)


def reclaim_memory(*, trim: bool = True) -> None:
    """Collect cycles and (``trim``) return freed heap pages to the OS where the libc
    allows. Blocks for as long as a full collection takes: see :class:`Reclaimer`."""
    gc.collect()
    malloc_trim = _malloc_trim() if trim else None
    if malloc_trim is not None:
        malloc_trim(0)


class Reclaimer:
    """:func:`reclaim_memory`, rate-limited: at most once per ``interval_s`` seconds.

    Each request is followed by a run at once (if the last run was over ``interval_s``
    ago, else as soon as that allows) and by one more run ``interval_s`` later: a model
    can stay referenced for a moment after its eviction (the worker thread that loaded
    or measured it lets go when it next gets the GIL), and models are often cycles that
    only a collection frees. Under steady evictions that is still one run per interval.
    ``malloc_trim`` runs only once ``trim_bytes`` were freed since the last trim (and
    again at the follow-up run of that trim).

    Example (on the event loop, after models were dropped)::

        reclaimer = Reclaimer()
        reclaimer.request(freed_bytes=entry.size)
    """

    def __init__(
        self,
        interval_s: float = 1.0,
        trim_bytes: int = 32 * 1024**2,
        *,
        clock: Callable[[], float] = time.monotonic,
        reclaim: Callable[..., None] = reclaim_memory,
    ) -> None:
        self.interval_s = interval_s
        self.trim_bytes = trim_bytes
        self.runs = 0  # how many times it ran
        self._clock = clock
        self._reclaim = reclaim
        self._last_run = -float("inf")
        self._owed = 0  # runs still due for the requests so far (0, 1 or 2)
        self._freed = 0  # bytes freed since the last trim
        self._retrim = False  # the next run trims too (the follow-up of a trim)
        self._handle: asyncio.Handle | None = None

    def request(self, freed_bytes: int) -> None:
        """Models holding ``freed_bytes`` were let go: reclaim soon, on this loop."""
        self._freed += max(0, freed_bytes)
        self._owed = 2
        self._schedule(asyncio.get_running_loop())

    def cancel(self) -> None:
        """Drop the pending runs (the cache is going away with its loop)."""
        self._owed = 0
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._handle is not None or not self._owed:
            return
        wait = self._last_run + self.interval_s - self._clock()
        # call_soon even when due: the callers waiting on this load are answered first.
        if wait <= 0:
            self._handle = loop.call_soon(self._run, loop)
        else:
            self._handle = loop.call_later(wait, self._run, loop)

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        self._handle = None
        self._owed -= 1
        enough = self._freed >= self.trim_bytes
        trim = enough or self._retrim
        self._retrim = enough and self._owed > 0
        if trim:
            self._freed = 0
        self._reclaim(trim=trim)
        self.runs += 1
        self._last_run = self._clock()
        self._schedule(loop)


_trim: Any = None
_looked_up = False


def _malloc_trim() -> Any:
    global _trim, _looked_up
    if not _looked_up:
        _looked_up = True
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                _trim = getattr(libc, "malloc_trim", None)  # glibc only (not musl)
            except OSError:
                _trim = None
    return _trim
