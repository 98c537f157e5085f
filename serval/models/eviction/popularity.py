"""The default policy: keep the models most likely to be asked for, per byte (or slot).

On a stationary workload the best any online policy can do is what the *popularity
oracle* does (:mod:`serval.models.eviction.oracle`): keep the models of highest true
request probability per byte and load the rest without keeping them. This policy
estimates that probability and ranks by ``rate / share``, where ``share`` is the part of
the tier's limits the model takes: ``size / max_bytes`` under a byte limit,
``1 / max_entries`` under a count limit (every model takes one slot, whatever its size),
their sum under both:

- the **rate** is the aged request count of :class:`FrequencyPolicy` (half-life
  ``half_life`` requests, remembered across evictions, so a popular model that was
  pushed out comes back with its popularity, and a returning model worth less than
  what it would push out is refused);
- a **rise** is noticed sooner than the long half-life allows: a second count with a
  half-life ``half_life / 10`` is kept beside it, and when it shows a model asked for
  at least ``RISE_FACTOR`` times its long-run rate (over at least ``RISE_MIN_REQUESTS``
  recent requests), the long count jumps to the short one's rate;
- a **fall** likewise: a resident model not asked for during ``SILENCE`` times its
  expected interval between requests (probability ``e**-SILENCE`` were its rate
  unchanged) has its count cut to one request per that silence, so a model that
  stopped being asked for leaves within a few of its old intervals, not after the
  several half-lives an exponential decay of a large count takes.

Load time is not weighed (pick ``gdsf`` for that): the target is the fewest loads.
Chosen by measuring (``benchmarks/cache_policies.py``) against both oracles, beside GDSF,
W-TinyLFU and plain aged counts of several half-lives; the study is in README.md
("Eviction at the online limit").

Cost: O(log n) per request (a heap push), plus a sweep of the resident entries every
``max(SWEEP_MIN, entries)`` requests (O(1) amortized) for the fall detector.
"""

from __future__ import annotations

import math

from serval.models.eviction.base import DEFAULT_HALF_LIFE, FrequencyPolicy

__all__ = ["PopularityPolicy"]

RISE_FACTOR = 4.0  # short-run rate over long-run rate that counts as a rise
RISE_MIN_REQUESTS = 5.0  # aged requests in the short count before a rise is believed
SILENCE = 6.0  # expected inter-request intervals without a request that count as a fall
SWEEP_MIN = 128  # requests between fall sweeps, at least
_SHORT_FORGET = 0.05  # short counts decayed below this are dropped


class PopularityPolicy(FrequencyPolicy):
    """Evict the entry of lowest estimated request rate per share of the tier's limits
    (per byte under a byte limit, per slot under a count limit; module docs).

    Example::

        policy = PopularityPolicy(half_life=10_000)   # requests
    """

    name = "popularity"

    def __init__(self, *, half_life: int = DEFAULT_HALF_LIFE) -> None:
        super().__init__(half_life=half_life)
        self.short_half_life = max(1, half_life // 10)
        self._short: dict[str, tuple[float, int]] = {}  # key -> (count, at clock)
        self._last: dict[str, int] = {}  # resident key -> clock of its last request
        self._next_sweep = SWEEP_MIN
        self._next_short_prune = self.short_half_life
        self._max_entries: int | None = None
        self._max_bytes: int | None = None

    def value(self, count: float, size: int, cost: float) -> float:
        # Rate per share of the tier: of its bytes, of its slots, or of both when both
        # are limited (a count limit alone makes every model cost one slot, whatever
        # its size). With no limit known, per megabyte.
        share = 0.0
        if self._max_bytes:
            share += size / self._max_bytes
        if self._max_entries:
            share += 1.0 / self._max_entries
        return count / share if share > 0 else count * 1e6 / size

    def set_limits(self, max_entries: int | None, max_bytes: int | None) -> None:
        if (max_entries, max_bytes) != (self._max_entries, self._max_bytes):
            self._max_entries, self._max_bytes = max_entries, max_bytes
            self._rebuild()  # every priority changes with the limits

    def insert(self, key: str, size: int, cost: float) -> None:
        super().insert(key, size, cost)
        self._observe(key)

    def hit(self, key: str) -> None:
        if key in self._entries:
            super().hit(key)
            self._observe(key)

    def rejected(self, key: str) -> None:
        super().rejected(key)
        self._observe(key)

    def remove(self, key: str, *, evicted: bool = False) -> None:
        super().remove(key, evicted=evicted)
        self._last.pop(key, None)

    def short_count(self, key: str) -> float:
        """The request count of ``key`` aged with the short half-life."""
        count, at = self._short.get(key, (0.0, self._clock))
        return float(count * 2.0 ** (-(self._clock - at) / self.short_half_life))

    # -- change detection ----------------------------------------------------------

    def _observe(self, key: str) -> None:
        """``key`` was just requested (the long count already has it)."""
        if key in self._entries:
            self._last[key] = self._clock
        short = self.short_count(key) + 1.0
        self._short[key] = (short, self._clock)
        # Rates, not counts: a count over the requests its half-life has weighed so far
        # (fewer than a half-life's worth early on, when the counts are young).
        stretch = self._window(self.half_life) / self._window(self.short_half_life)
        if short >= RISE_MIN_REQUESTS and short * stretch > RISE_FACTOR * self.count(key):
            self._set_count(key, short * stretch)
        if self._clock >= self._next_sweep:
            self._next_sweep = self._clock + max(SWEEP_MIN, len(self._entries))
            self._sweep_silent()
        if self._clock >= self._next_short_prune:
            self._next_short_prune = self._clock + self.short_half_life
            self._short = {k: v for k, v in self._short.items() if self._alive(v)}

    def _window(self, half_life: int) -> float:
        """How many requests a count aged with ``half_life`` has weighed so far: the
        sum of ``2 ** (-age / half_life)`` over the requests seen."""
        return float(half_life / math.log(2) * (1.0 - 2.0 ** (-self._clock / half_life)))

    def _alive(self, entry: tuple[float, int]) -> bool:
        count, at = entry
        return bool(count * 2.0 ** (-(self._clock - at) / self.short_half_life) >= _SHORT_FORGET)

    def _sweep_silent(self) -> None:
        window = self._window(self.half_life)  # count / window = requests per request
        for key, last in list(self._last.items()):
            silent = self._clock - last
            if silent > 0 and self.count(key) / window * silent > SILENCE:
                self._set_count(key, window / silent)

    def _set_count(self, key: str, count: float) -> None:
        """Make ``key``'s long count ``count`` (in requests now)."""
        raw = count * self._increment()
        entry = self._entries.get(key)
        if entry is None:
            self._history[key] = raw
        else:
            entry.count = raw
            self._push(key, entry)
