"""The models a cache holds in memory, and the room loads may take beside them.

A cache's memory budget (``max_bytes``; without one, half the machine's memory) covers
the models resident **and** the loads in flight: a load reserves the bytes it is
expected to take before it starts (:mod:`serval.models._slots`), and resident plus
reserved bytes stay within the budget. When a load does not fit, :meth:`Resident.room`
decides:

- if the policy (and the admission filter) would keep the newcomer in place of the
  models it would evict for it, those leave now, before the load rather than after it:
  the models a cache that loads one at a time evicts, only earlier;
- otherwise the load waits for a load in flight to end. When none is in flight, the
  models the policy ranks lowest leave to make room for it anyway (a request is
  answered even for a model not worth keeping), and it is served but not kept.

Pinned models never leave; when pins (or loads in flight that all learned mid-way that
they need more) fill the budget, a load runs over it rather than wait forever (logged).
Evicted models are released (:mod:`serval.models._release`) so their memory comes back.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from serval.models._release import Reclaimer, release
from serval.models._slots import Ticket, machine_budget
from serval.models.config import CacheConfig
from serval.models.eviction import Budget, make_admission, make_policy
from serval.models.stats import ModelCounters, TierStats

__all__ = ["Entry", "Resident"]

logger = logging.getLogger("serval.models")


@dataclass(eq=False)
class Entry:
    """A model in memory."""

    model: Any
    size: int
    cost: float  # seconds the load took
    hits: int = 0  # requests it answered from memory
    version: tuple[str | None, str | None] = (None, None)  # (name@version, alias) it is


class Resident:
    """The resident models of one cache within its limits (see the module docs).

    Example (what :class:`~serval.models.cache.ModelCache` does)::

        resident = Resident(config, "models", stats, counters)
        slots = LoadSlots(room=resident.room)
        await resident.insert("tenant7", Entry(model, size, cost), ticket)
    """

    def __init__(
        self, config: CacheConfig, name: str, stats: TierStats, counters: ModelCounters
    ) -> None:
        self.name = name
        self.entries: dict[str, Entry] = {}
        self.pinned: set[str] = set()
        self.budget = Budget(
            make_policy(config.policy),
            max_entries=config.max_models,
            max_bytes=config.max_bytes,
            admission=make_admission(config.admission) if config.admission else None,
        )
        self.reclaimer = Reclaimer()  # gc + malloc_trim, at most once a second
        self._stats = stats
        self._counters = counters
        self._background: set[asyncio.Task[None]] = set()
        self._warned_over = False

    @property
    def limit(self) -> int:
        """The bytes resident models and loads in flight may take together."""
        return self.budget.max_bytes or machine_budget()

    @property
    def bytes_used(self) -> int:
        return self.budget.bytes_used

    def set_limits(self, max_models: int | None, max_bytes: int | None) -> list[str]:
        """New limits; models over them leave (pinned ones stay). Returns those ids."""
        self.budget.max_entries = max_models
        self.budget.max_bytes = max_bytes
        victims = self.budget.over_budget(protected=self.pinned)
        self.evict_later(victims)
        return victims

    # -- room for loads --------------------------------------------------------------

    def room(self, reserved: int, ticket: Ticket, size: int, alone: bool) -> bool:
        """Whether ``reserved`` bytes of loads in flight (``ticket``'s ``size``
        included) fit beside the resident models, evicting ahead when the module docs
        allow. ``alone``: no other load in flight can end and make room."""
        over = self.budget.bytes_used + reserved - self.limit
        if over <= 0:
            return True
        decision = self.budget.room_for_load(
            ticket.key,
            over,
            size,
            self._typical_cost(),
            self.pinned,
            force=ticket.force,
            alone=alone,
        )
        if decision.victims:
            self.evict_later(decision.victims)
        elif decision.go:
            self._warn_over_budget(ticket.key, over)
        ticket.keep = ticket.keep and decision.keep
        return decision.go

    def _typical_cost(self) -> float:
        return self._stats.load_time_s / self._stats.loads if self._stats.loads else 1.0

    def _warn_over_budget(self, model_id: str, over: int) -> None:
        if not self._warned_over:
            self._warned_over = True
            logger.warning(
                "cache %r: loading %r takes it %d bytes over its budget: pinned models "
                "and the loads in flight fill it (unpin some or raise max_bytes); "
                "logged once",
                self.name,
                model_id,
                over,
            )

    # -- entering and leaving --------------------------------------------------------

    async def insert(self, model_id: str, entry: Entry, ticket: Ticket) -> bool:
        """Keep a loaded model if its ticket and the policy allow; whether it was kept."""
        pinned = model_id in self.pinned
        if not ticket.keep and not pinned:
            self.budget.decline(model_id)
            self._stats.rejected += 1
            logger.info(
                "model %r serves its request but is not kept: room was made for its load "
                "alone, and the policy values the models it would evict more",
                model_id,
            )
            return False
        decision = self.budget.admit(
            model_id, entry.size, entry.cost, protected=self.pinned, force=pinned
        )
        if not decision.admitted:
            self._stats.rejected += 1
            logger.info(
                "model %r serves its request but is not kept: %s", model_id, decision.reason
            )
            return False
        self.entries[model_id] = entry
        self._counters.resident(model_id, entry.size, entry.cost)
        leaving = [(v, self.entries.pop(v)) for v in decision.victims]
        self._count_evictions(leaving)
        if pinned and self.over_limits():
            logger.warning(
                "cache %r is over its limits (%d models, %d bytes) because pinned models "
                "do not fit: unpin some or raise max_bytes / max_models",
                self.name,
                len(self.entries),
                self.budget.bytes_used,
            )
        await self.release(leaving)
        return True

    def take(self, model_id: str) -> Entry | None:
        """Remove ``model_id`` (being replaced, or unloaded on request); the caller
        releases it."""
        entry = self.entries.pop(model_id, None)
        if entry is not None:
            self.budget.remove(model_id)
        return entry

    def evict_later(self, victims: list[str]) -> None:
        """Remove ``victims`` (already out of the budget) and release them soon."""
        leaving = [(v, self.entries.pop(v)) for v in victims if v in self.entries]
        if leaving:
            self._count_evictions(leaving)
            task = asyncio.get_running_loop().create_task(self.release(leaving))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def _count_evictions(self, leaving: list[tuple[str, Entry]]) -> None:
        self._stats.evictions += len(leaving)
        for model_id, _ in leaving:
            self._counters.gone(model_id, evicted=True)

    async def clear(self) -> None:
        """Unload every model, pins included."""
        self.pinned.clear()
        leaving = list(self.entries.items())
        self.entries.clear()
        for model_id, _ in leaving:
            self.budget.remove(model_id)
            self._counters.gone(model_id)
        await self.release(leaving)

    def over_limits(self) -> bool:
        limits = self.budget
        return (limits.max_entries is not None and len(self.entries) > limits.max_entries) or (
            limits.max_bytes is not None and limits.bytes_used > limits.max_bytes
        )

    async def release(self, leaving: list[tuple[str, Entry]]) -> None:
        for model_id, entry in leaving:
            logger.info("unloading model %r (%d bytes)", model_id, entry.size)
            await release(model_id, entry.model)
            entry.model = None
        if leaving:
            self.reclaimer.request(sum(entry.size for _, entry in leaving))
