"""Counters per tier: what the caches did, readable from Python and exported as metrics.

Example::

    s = serval.models.stats()
    s.hot.hits, s.hot.misses, s.hot.bytes_used
    s.warm.rejected        # blobs whose signature failed
    s.as_dict()            # {"hot": {...}, "warm": {...}, "cold": {...}}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

__all__ = ["ModelStats", "TierStats"]


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
