"""The online limit: what a cache that knew each model's true popularity would load.

Belady's schedule (:mod:`serval.models.eviction.belady`) knows the future, so no online
policy can approach it. On a trace drawn independently from a popularity distribution,
the best an online policy can do, in expectation, is what the **popularity oracle**
does: keep the set of models that maximizes the probability of a hit — the 0/1
knapsack of the true request probabilities within the byte budget — and load every
other model for its request without keeping it. Its expected loads are the cold loads
of the kept set plus ``len(trace) × (1 - P(kept))``; :func:`popularity_oracle` replays
the actual trace, so its figure is comparable with a policy's on the same requests.

When popularity shifts, the **window oracle** is the same oracle told the distribution
*in force* at each request: a trace is cut into :class:`Phase` s, each with its own true
distribution, and at the start of a phase the oracle drops what the new distribution
does not keep and keeps the newly popular models as they are next requested. It learns
of a shift the instant it happens, which an online policy cannot, so it is a bound on
what any policy estimating popularity from a window of the recent past can reach.

The knapsack is solved exactly by dynamic programming over sizes rounded *up* to
``budget / resolution`` bytes, so the kept set always fits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from serval.models.eviction.replay import ReplayResult, TraceRequest

__all__ = ["Phase", "best_set", "popularity_oracle"]

_RESOLUTION = 4_000  # knapsack capacity units


@dataclass(frozen=True)
class Phase:
    """From request index ``start`` on, key ``k`` is requested with probability
    ``probabilities[k]`` and occupies ``sizes[k]`` bytes."""

    start: int
    probabilities: Mapping[str, float]
    sizes: Mapping[str, int]


def best_set(
    probabilities: Mapping[str, float],
    sizes: Mapping[str, int],
    budget: int,
    resolution: int = _RESOLUTION,
) -> set[str]:
    """The keys of greatest total probability whose sizes fit in ``budget`` bytes.

    Example::

        best_set({"a": 0.5, "b": 0.3, "c": 0.25}, {"a": 6, "b": 5, "c": 5}, budget=10)
        # -> {"b", "c"}: "a" is likelier than either, not than both together
    """
    keys = [k for k, p in probabilities.items() if p > 0 and 0 < sizes[k] <= budget]
    unit = max(budget / resolution, 1.0)
    capacity = int(budget // unit)
    weights = [min(capacity + 1, int(np.ceil(sizes[k] / unit))) for k in keys]
    best = np.zeros(capacity + 1)
    took = np.zeros((len(keys), capacity + 1), dtype=bool)
    for i, (key, w) in enumerate(zip(keys, weights, strict=True)):
        if w > capacity:
            continue
        with_it = best[: capacity + 1 - w] + probabilities[key]
        better = with_it > best[w:]
        took[i, w:] = better
        best[w:] = np.where(better, with_it, best[w:])
    chosen: set[str] = set()
    room = capacity
    for i in range(len(keys) - 1, -1, -1):
        if took[i, room]:
            chosen.add(keys[i])
            room -= weights[i]
    return chosen


def popularity_oracle(
    trace: Sequence[TraceRequest], phases: Sequence[Phase], budget: int
) -> ReplayResult:
    """Replay ``trace`` keeping, in each phase, the :func:`best_set` of its distribution.

    A kept model is loaded on its first request of the phase and then always hit; any
    other model is loaded for its request and dropped. With one phase this is the
    popularity oracle; with several, the window oracle (module docs).
    """
    if not phases or phases[0].start != 0:
        raise ValueError("phases must start with one at request 0")
    starts = {p.start: p for p in phases}
    kept: set[str] = set()
    resident: set[str] = set()
    misses = loaded = 0
    load_s = 0.0
    for i, request in enumerate(trace):
        phase = starts.get(i)
        if phase is not None:
            kept = best_set(phase.probabilities, phase.sizes, budget)
            resident &= kept
        if request.key in resident:
            continue
        misses += 1
        loaded += request.size
        load_s += request.cost
        if request.key in kept:
            resident.add(request.key)
    return ReplayResult(len(trace), misses, loaded, load_s)
