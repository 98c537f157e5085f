"""A router's background copies of hot models (see ``router.py``, "Models").

When model-aware routing wants a second replica for a model that a replica already
holds warm, the new replica loads it as a prewarm (``ModelCommand("prewarm")``, the
load queued behind the replica's live ones) while requests stay on the warm holders.
Once the copy reports the model in memory it becomes a holder; a copy that fails or is
not kept adds nothing, and one that takes longer than ``WARMING_FOR_S`` may be tried
again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from serval.router.assignment import _Slot
from serval.transport.messages import ModelCommand, Ok

__all__ = ["BackgroundCopies"]

logger = logging.getLogger("serval.router")

WARMING_FOR_S = 60.0  # a copy loading in the background longer than this: try again
_LOADED = ("loaded", "already loaded")  # prewarm outcomes that left the model in memory


class BackgroundCopies:
    """The copies one router is making; ``on_loaded(model_id, slot)`` when one is in."""

    def __init__(self, on_loaded: Callable[[str, _Slot], None]) -> None:
        self._on_loaded = on_loaded
        self._warming: dict[str, tuple[str, float]] = {}  # model id -> (replica, since)
        self._tasks: set[asyncio.Task[None]] = set()

    def warming(self, model_id: str) -> bool:
        """Whether a copy of ``model_id`` is loading (and not overdue)."""
        entry = self._warming.get(model_id)
        if entry is not None and time.monotonic() - entry[1] >= WARMING_FOR_S:
            del self._warming[model_id]
            entry = None
        return entry is not None

    def start(self, model_id: str, slot: _Slot) -> None:
        """Copy ``model_id`` to ``slot``'s replica in the background."""
        self._warming[model_id] = (slot.replica_id, time.monotonic())
        task = asyncio.get_running_loop().create_task(self._copy(model_id, slot))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def _copy(self, model_id: str, slot: _Slot) -> None:
        loaded = False
        try:
            stream = await slot.client.open(ModelCommand("prewarm", [model_id]))
            reply = await asyncio.wait_for(stream.receive(), WARMING_FOR_S)
            if isinstance(reply, Ok) and isinstance(reply.value, dict):
                loaded = any(
                    isinstance(outcomes, dict) and outcomes.get(model_id) in _LOADED
                    for outcomes in reply.value.values()
                )
            if not loaded:
                logger.debug("copying %s to %s: %s", model_id, slot.replica_id, reply)
        except Exception as exc:  # the replica went away, or took too long
            logger.debug("copying %s to %s failed: %s", model_id, slot.replica_id, exc)
        if self._warming.get(model_id, ("",))[0] == slot.replica_id:
            del self._warming[model_id]
        if loaded:
            self._on_loaded(model_id, slot)
