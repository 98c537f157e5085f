"""Counters and histograms cheap enough for the request path.

prometheus-client's metrics take a lock and build a label tuple per observation; on
the proxy's path that is a few microseconds a request. These tables cost a dict look-up
and an addition or two, and are read only when someone scrapes (at scrape time they
become prometheus-client families: :mod:`serval.observability.snapshot`).

Each table is keyed by a tuple of label *values*; the label *names* are given when the
table is turned into a family. Only the event loop that owns a table writes it.

Example::

    latency = HistogramTable(LATENCY_BUCKETS_S)
    latency.observe(("GET", "/api"), 0.0042)
    counts = CounterTable()
    counts.inc(("app", "Model", "predict"))
"""

from __future__ import annotations

from bisect import bisect_left

__all__ = [
    "BATCH_SIZE_BUCKETS",
    "LATENCY_BUCKETS_S",
    "LOAD_BUCKETS_S",
    "CounterTable",
    "HistogramTable",
]

Key = tuple[str, ...]

LATENCY_BUCKETS_S = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
)  # fmt: skip
LOAD_BUCKETS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
BATCH_SIZE_BUCKETS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0)


class CounterTable:
    """Counts per key."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[Key, float] = {}

    def inc(self, key: Key, value: float = 1.0) -> None:
        counts = self.counts
        counts[key] = counts.get(key, 0.0) + value

    def items(self) -> list[tuple[Key, float]]:
        return list(self.counts.items())


class HistogramTable:
    """A histogram per key: the count per bucket (``le`` upper bounds, then +Inf), and
    the sum, in one list per key (``[b0, b1, …, b_inf, sum]``)."""

    __slots__ = ("bounds", "series")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.series: dict[Key, list[float]] = {}

    def observe(self, key: Key, value: float) -> None:
        row = self.series.get(key)
        if row is None:
            row = self.series[key] = [0.0] * (len(self.bounds) + 2)
        row[bisect_left(self.bounds, value)] += 1
        row[-1] += value

    def items(self) -> list[tuple[Key, list[float]]]:
        """A copy of every row (safe to read in another thread afterwards)."""
        return [(key, list(row)) for key, row in self.series.items()]
