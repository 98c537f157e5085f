"""Percentiles, what one load run measured, result rows and comparisons against a baseline.

Percentiles use the **nearest-rank** method: the p-th percentile of N sorted samples is
the sample at 1-based rank ``ceil(p / 100 * N)`` (rank 1 for p = 0). It always returns a
value that was observed, which is also what wrk's HdrHistogram-based
``latency:percentile(p)`` reports (to its bucket precision), so rows from both load
generators read the same way.

Example::

    percentile([3.0, 1.0, 2.0, 4.0], 50)   # -> 2.0
    format_percent(0.48)                   # -> "48%"
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields


def percentile(samples: Sequence[float], p: float) -> float:
    """The nearest-rank p-th percentile (0 <= p <= 100) of unsorted ``samples``."""
    return percentiles(samples, [p])[0]


def percentiles(samples: Sequence[float], ps: Sequence[float]) -> list[float]:
    """Several nearest-rank percentiles, sorting ``samples`` once."""
    if not samples:
        raise ValueError("percentile of no samples")
    ordered = sorted(samples)
    out = []
    for p in ps:
        if not 0 <= p <= 100:
            raise ValueError(f"percentile p={p!r} is outside 0..100")
        out.append(ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1])
    return out


@dataclass(frozen=True)
class ErrorCounts:
    """Failed requests by kind, wrk's categories: socket errors, and status >= 400."""

    connect: int = 0
    read: int = 0
    write: int = 0
    status: int = 0
    timeout: int = 0

    @property
    def total(self) -> int:
        return self.connect + self.read + self.write + self.status + self.timeout

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        return ErrorCounts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


@dataclass(frozen=True)
class Measurement:
    """What one load run measured, whichever load generator made it.

    ``requests`` counts completed responses (error statuses included, as wrk does);
    latencies are in milliseconds.
    """

    requests: int
    duration_s: float
    errors: ErrorCounts
    p50_ms: float
    p90_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0


@dataclass(frozen=True)
class Result:
    """One row of a benchmark: a system under one scenario at one concurrency."""

    system: str
    scenario: str
    concurrency: int
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float

    @classmethod
    def from_measurement(
        cls, m: Measurement, *, system: str, scenario: str, concurrency: int
    ) -> Result:
        return cls(
            system=system,
            scenario=scenario,
            concurrency=concurrency,
            requests=m.requests,
            errors=m.errors.total,
            rps=round(m.rps, 1),
            p50_ms=round(m.p50_ms, 4),
            p99_ms=round(m.p99_ms, 4),
        )


def median_results(rounds: Sequence[Sequence[Result]]) -> list[Result]:
    """Rounds of the same points folded into one row per point, in first-round order:
    the median of rps, p50 and p99 across rounds (upper median for an even count, a
    measured value), requests and errors summed. Repeating interleaved rounds is how a
    noisy machine still gives ratios that hold."""
    points: dict[tuple[str, str, int], list[Result]] = {}
    for rows in rounds:
        for r in rows:
            points.setdefault((r.system, r.scenario, r.concurrency), []).append(r)
    return [
        Result(
            system=system,
            scenario=scenario,
            concurrency=conns,
            requests=sum(r.requests for r in rows),
            errors=sum(r.errors for r in rows),
            rps=_median([r.rps for r in rows]),
            p50_ms=_median([r.p50_ms for r in rows]),
            p99_ms=_median([r.p99_ms for r in rows]),
        )
        for (system, scenario, conns), rows in points.items()
    ]


def _median(values: Sequence[float]) -> float:
    return sorted(values)[len(values) // 2]


@dataclass(frozen=True)
class Comparison:
    """A system against the baseline, same scenario and concurrency, measured in one run."""

    system: str
    baseline: str
    scenario: str
    concurrency: int
    rps_ratio: float
    p50_delta_ms: float
    p50_ratio: float
    p99_ratio: float


def compare(results: Iterable[Result], baseline: str) -> list[Comparison]:
    """Every non-baseline row against the baseline row of its scenario and concurrency.

    Rows without a matching baseline row are left out.
    """
    rows = list(results)
    base = {(r.scenario, r.concurrency): r for r in rows if r.system == baseline}
    out: list[Comparison] = []
    for r in rows:
        b = base.get((r.scenario, r.concurrency))
        if r.system == baseline or b is None:
            continue
        out.append(
            Comparison(
                system=r.system,
                baseline=baseline,
                scenario=r.scenario,
                concurrency=r.concurrency,
                rps_ratio=_ratio(r.rps, b.rps),
                p50_delta_ms=r.p50_ms - b.p50_ms,
                p50_ratio=_ratio(r.p50_ms, b.p50_ms),
                p99_ratio=_ratio(r.p99_ms, b.p99_ms),
            )
        )
    return out


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


def format_ratio(x: float) -> str:
    """``2.1234`` -> ``"2.12x"``; NaN (no baseline) -> ``"n/a"``."""
    return "n/a" if math.isnan(x) else f"{x:.2f}x"


def format_percent(x: float) -> str:
    """``0.4812`` -> ``"48%"``; NaN -> ``"n/a"``."""
    return "n/a" if math.isnan(x) else f"{x * 100:.0f}%"


def format_delta_ms(d: float) -> str:
    """``0.154`` -> ``"+0.154 ms"``."""
    return "n/a" if math.isnan(d) else f"{d:+.3f} ms"
