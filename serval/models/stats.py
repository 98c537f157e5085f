"""Counters per tier: what the caches did, readable from Python and exported as metrics.

Example::

    s = serval.models.stats()
    s.hot.hits, s.hot.misses, s.hot.bytes_used
    s.warm.rejected        # blobs whose signature failed
    s.as_dict()            # {"hot": {...}, "warm": {...}, "cold": {...}}
"""

from __future__ import annotations

from array import array
from dataclasses import asdict, dataclass, fields
from typing import Final

__all__ = ["ModelCounters", "ModelStats", "TierStats"]


@dataclass
class TierStats:
    """Counters of one tier (hot: a replica's memory; warm: the shared cache; cold: the
    registry). Counters only grow; ``bytes_used``, ``entries`` and ``bytes_loading``
    are current values, ``bytes_peak`` a high-water mark."""

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
    bytes_loading: int = 0  # hot: bytes reserved by the loads in flight now
    bytes_peak: int = 0  # hot: the most resident plus loading bytes ever were

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


# ModelCounters row layout (serval.observability.snapshot.MODEL_COLUMNS, the same order):
# counters, then the model's state now.
REQUESTS, HITS, MISSES, LOADS, LOAD_FAILURES, EVICTIONS = range(6)
RESIDENT, LOADING, BYTES, LOAD_TIME_S = range(6, 10)
WIDTH: Final = 10
_ZEROS: Final = array("d", [0.0] * WIDTH)
MAX_TRACKED_IDS: Final = 100_000  # past this many ids, new ones are counted together
UNTRACKED: Final = "__other__"


class ModelCounters:
    """Counters per model id of one hot cache (its metrics and the top-N ranking).

    One flat ``array("d")`` holds a row per id, ``[requests, hits, misses, loads,
    load_failures, evictions, resident, loading, bytes, load_time_s]`` (the last four:
    its state now), at the offset ``index[model_id]``; a scrape copies it in one
    ``tobytes()``. A hit costs a dict look-up and two additions. Ids past
    :data:`MAX_TRACKED_IDS` share the row ``__other__``, so a stream of junk ids cannot
    grow it without bound.
    """

    __slots__ = ("index", "values")

    def __init__(self) -> None:
        self.index: dict[str, int] = {}  # model id -> offset of its row in values
        self.values = array("d")

    def row(self, model_id: str) -> list[float]:
        """The row of ``model_id`` (zeros when it was never counted)."""
        i = self.index.get(model_id)
        return [0.0] * WIDTH if i is None else self.values[i : i + WIDTH].tolist()

    def _new(self, model_id: str) -> int:
        if len(self.index) >= MAX_TRACKED_IDS:
            i = self.index.get(UNTRACKED)
            if i is not None:
                return i
            model_id = UNTRACKED
        i = self.index[model_id] = len(self.values)
        self.values.extend(_ZEROS)
        return i

    def hit(self, model_id: str) -> None:
        i = self.index.get(model_id)
        if i is None:
            i = self._new(model_id)
        values = self.values
        values[i] += 1.0
        values[i + HITS] += 1.0

    def miss(self, model_id: str) -> None:
        i = self.index.get(model_id)
        if i is None:
            i = self._new(model_id)
        values = self.values
        values[i] += 1.0
        values[i + MISSES] += 1.0

    def _at(self, model_id: str) -> int:
        i = self.index.get(model_id)
        return self._new(model_id) if i is None else i

    def count(self, model_id: str, column: int, n: int = 1) -> None:
        self.values[self._at(model_id) + column] += n

    def loading(self, model_id: str, now: bool) -> None:
        self.values[self._at(model_id) + LOADING] = 1.0 if now else 0.0

    def resident(self, model_id: str, size: int, load_time_s: float) -> None:
        i = self._at(model_id)
        values = self.values
        values[i + RESIDENT], values[i + BYTES], values[i + LOAD_TIME_S] = 1.0, size, load_time_s

    def gone(self, model_id: str, evicted: bool = False) -> None:
        """Out of memory (evicted by the policy when ``evicted``)."""
        i = self._at(model_id)
        values = self.values
        values[i + RESIDENT] = values[i + BYTES] = 0.0
        if evicted:
            values[i + EVICTIONS] += 1.0
