"""LFU with aging: keep what is asked for most often, lately.

Counts age with a half-life and are remembered across evictions, exactly as GDSF's
(see :mod:`serval.models.eviction.base`); sizes and load costs are ignored when ranking
(a byte budget still evicts as many entries as it takes to fit). Plain LFU never
forgets, so yesterday's hot model would stay forever; aging is what lets it leave.
"""

from __future__ import annotations

from serval.models.eviction.base import FrequencyPolicy

__all__ = ["LFUPolicy"]


class LFUPolicy(FrequencyPolicy):
    """Evict the entry with the lowest aged request count.

    Example::

        policy = LFUPolicy(half_life=50_000)   # remember popularity longer
    """

    name = "lfu"

    def value(self, count: float, size: int, cost: float) -> float:
        return count
