"""Replay a request trace through a tier's budget, offline: what a policy would have done.

Used by ``benchmarks/cache_policies.py`` and handy for choosing a policy from your own
request logs::

    trace = [TraceRequest("tenant7", size=40_000_000, cost=0.6), ...]
    result = replay(trace, Budget(GDSFPolicy(), max_bytes=2 * 2**30))
    result.misses, result.bytes_loaded, result.load_s

A miss loads the model (its bytes and cost are counted) and offers it to the budget,
which may refuse it (admission filter, too big): the request is still answered, exactly
as in :class:`~serval.models.cache.ModelCache`. ``loads_in_budget=True`` replays the
hot cache exactly: its budget covers a load in flight too, so room is made before each
load for what the load is expected to take (the model's last size, else the largest
seen so far; :meth:`Budget.room_for_load`), as a replica serving one request at a time
does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from serval.models.eviction.budget import Budget

__all__ = ["ReplayResult", "TraceRequest", "replay"]


@dataclass(frozen=True)
class TraceRequest:
    """One request of a trace: the model, its size in bytes, its load time in seconds."""

    key: str
    size: int
    cost: float = 1.0


@dataclass(frozen=True)
class ReplayResult:
    """What serving a trace cost: loads, bytes loaded, seconds spent loading."""

    requests: int
    misses: int
    bytes_loaded: int
    load_s: float

    @property
    def miss_ratio(self) -> float:
        return self.misses / self.requests if self.requests else 0.0


def replay(
    trace: Iterable[TraceRequest], budget: Budget, *, loads_in_budget: bool = False
) -> ReplayResult:
    """Serve ``trace`` from a tier governed by ``budget``; count what had to be loaded."""
    requests = misses = loaded = 0
    load_s = 0.0
    sizes: dict[str, int] = {}
    largest: int | None = None
    for request in trace:
        requests += 1
        budget.record_request(request.key)
        if request.key in budget:
            budget.hit(request.key)
            continue
        misses += 1
        loaded += request.size
        load_s += request.cost
        keep = True
        if loads_in_budget and budget.max_bytes is not None:
            expected = sizes.get(request.key, largest)
            if expected is not None:  # the first load of all runs alone, into an empty tier
                over = budget.bytes_used + expected - budget.max_bytes
                keep = budget.room_for_load(request.key, over, expected, request.cost).keep
            sizes[request.key] = request.size
            largest = max(largest or 0, request.size)
        if keep:
            budget.admit(request.key, request.size, request.cost)
        else:
            budget.decline(request.key)
    return ReplayResult(requests, misses, loaded, load_s)
