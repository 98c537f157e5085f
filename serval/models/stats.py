"""Counters per tier: what the caches did, readable from Python and exported as metrics.

Example::

    s = serval.models.stats()
    s.hot.hits, s.hot.misses, s.hot.bytes_used
    s.warm.rejected        # blobs whose signature failed
    s.as_dict()            # {"hot": {...}, "warm": {...}, "cold": {...}}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Final

__all__ = ["ModelCounters", "ModelStats", "TierStats"]


@dataclass
class TierStats:
    """Counters of one tier (hot: a replica's memory; warm: the shared cache; cold: the
    registry). Counters only grow; ``bytes_used`` and ``entries`` are current values."""

    hits: int = 0  # requests answered from this tier
    misses: int = 0  # requests this tier could not answer
    loads: int = 0  # loads into this tier (hot: model loads; warm: puts; cold: fetches)
    load_failures: int = 0  # loads that failed after their retries
    load_time_s: float = 0.0  # seconds spent in successful loads
    bytes_loaded: int = 0  # bytes those loads brought in
    evictions: int = 0  # entries the policy pushed out
    rejected: int = 0  # warm: blobs discarded (bad signature or unreadable); hot: not admitted
    outages: int = 0  # times the tier went down (logged once each, not per request)
    bytes_used: int = 0
    entries: int = 0

    def __add__(self, other: TierStats) -> TierStats:
        return TierStats(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )

    def as_dict(self) -> dict[str, int | float]:
        return asdict(self)


@dataclass
class ModelStats:
    """The three tiers of this process; ``hot`` sums every model cache in it."""

    hot: TierStats
    warm: TierStats
    cold: TierStats

    def as_dict(self) -> dict[str, dict[str, int | float]]:
        return {"hot": self.hot.as_dict(), "warm": self.warm.as_dict(), "cold": self.cold.as_dict()}


# ModelCounters row layout: requests, hits, misses, loads, load_failures, evictions.
REQUESTS, HITS, MISSES, LOADS, LOAD_FAILURES, EVICTIONS = range(6)
MAX_TRACKED_IDS: Final = 100_000  # past this many ids, new ones are counted together
UNTRACKED: Final = "__other__"


class ModelCounters:
    """Counters per model id of one hot cache (its metrics and the top-N ranking):
    a list per id, ``[requests, hits, misses, loads, load_failures, evictions]``.
    A hit costs a dict look-up and two additions. Ids past :data:`MAX_TRACKED_IDS`
    share the row ``__other__``, so a stream of junk ids cannot grow it without bound.
    """

    __slots__ = ("rows",)

    def __init__(self) -> None:
        self.rows: dict[str, list[int]] = {}

    def _row(self, model_id: str) -> list[int]:
        row = self.rows.get(model_id)
        if row is None:
            if len(self.rows) >= MAX_TRACKED_IDS:
                model_id = UNTRACKED
                row = self.rows.get(model_id)
            if row is None:
                row = self.rows[model_id] = [0, 0, 0, 0, 0, 0]
        return row

    def hit(self, model_id: str) -> None:
        row = self._row(model_id)
        row[REQUESTS] += 1
        row[HITS] += 1

    def miss(self, model_id: str) -> None:
        row = self._row(model_id)
        row[REQUESTS] += 1
        row[MISSES] += 1

    def count(self, model_id: str, column: int, n: int = 1) -> None:
        self._row(model_id)[column] += n
