"""Letting go of an evicted model, so that its memory actually comes back.

1. ``close()`` is called if the model has one (awaited if it returns an awaitable);
   else an ``async def __del__`` is awaited (Ray Serve's unload hook). A plain
   ``__del__`` runs by itself when the last reference goes.
2. The cache drops its references; requests still using the model keep it alive until
   they finish, so nothing is pulled from under them (a ``close()`` that frees resources
   should tolerate that, or leave the freeing to ``__del__``).
3. :func:`reclaim_memory` runs the cycle collector (models are often reference cycles:
   torch modules, closures) and, on glibc, ``malloc_trim`` so that freed heap pages go
   back to the operating system rather than staying in the allocator's free lists.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import inspect
import logging
import sys
from typing import Any

__all__ = ["reclaim_memory", "release"]

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
    except Exception:
        logger.exception("unloading model %r raised; its memory is released anyway", model_id)


def reclaim_memory() -> None:
    """Collect cycles and return freed heap pages to the OS (where the libc allows)."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


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
