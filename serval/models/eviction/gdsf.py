"""GDSF: the default policy. Keeps what is often asked for, slow to load, and small.

An entry is worth ``count × (1 + load_time / mean_load_time) / size``:

- ``count`` — how often it was asked for, aged with a half-life (see
  :mod:`serval.models.eviction.base`), and remembered across evictions;
- ``1 + load_time / mean_load_time`` — what a miss on it costs: one request that waits,
  plus the seconds of loading, in units of this tier's average load (measured, never
  declared), so a model that takes 40 s to load is kept over one that takes 1 s;
- ``size`` — the bytes it occupies (measured after it loads).

This is the value function of Cherkasova's GreedyDual-Size-Frequency (frequency × cost /
size). Two things differ from the 1998 policy, both because serval's benchmark
(``benchmarks/cache_policies.py``) measured them: GreedyDual's aging (priorities start
from the priority of the last evicted entry) is replaced by exponentially aged counts,
which halved the gap to Belady's schedule on stationary traces and still lets shifted
popularity through; and the cost counts the waiting request as well as the load time,
since a policy that minimizes only load seconds keeps large models at the price of many
more cold starts.

Reference: L. Cherkasova, "Improving WWW Proxies Performance with Greedy-Dual-Size-
Frequency Caching Policy", HP Labs HPL-98-69, 1998.
"""

from __future__ import annotations

from serval.models.eviction.base import DEFAULT_HALF_LIFE, FrequencyPolicy

__all__ = ["GDSFPolicy"]

_COST_MEMORY = 1_000  # the mean load time follows roughly the last this-many loads


class GDSFPolicy(FrequencyPolicy):
    """Evict the entry of lowest ``count × (1 + cost / mean cost) / size``.

    ``cost`` is the measured load time in seconds, ``size`` the measured size in bytes.

    Example::

        policy = GDSFPolicy(half_life=10_000)
    """

    name = "gdsf"

    def __init__(self, *, half_life: int = DEFAULT_HALF_LIFE) -> None:
        super().__init__(half_life=half_life)
        self.mean_cost = 0.0
        self._costs_seen = 0

    def insert(self, key: str, size: int, cost: float) -> None:
        self._costs_seen += 1
        self.mean_cost += (max(cost, 0.0) - self.mean_cost) / min(self._costs_seen, _COST_MEMORY)
        super().insert(key, size, cost)

    def value(self, count: float, size: int, cost: float) -> float:
        miss = 1.0 + (cost / self.mean_cost if self.mean_cost > 0 else 0.0)
        return count * miss * 1e6 / size  # per megabyte: readable magnitudes
