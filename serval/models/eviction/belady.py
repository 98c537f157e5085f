"""The offline figures a policy is judged against: Belady's schedule and a lower bound.

With equal sizes, Belady's MIN (evict what is needed furthest in the future) is the
optimum. With sizes that vary, minimizing misses is NP-hard, so two figures bracket the
optimum:

- :func:`belady_size` — **Belady-Size**, the standard offline heuristic for variable
  sizes: on a miss, evict the cached entries with the largest ``size × time to next
  use`` until the newcomer fits (it may itself be the one left out). It is a real
  schedule, so its misses are *at least* the optimum's: an upper bound on OPT.
- :func:`lower_bound` — **PFOO-L** (Berger, Beckmann, Harchol-Balter, "Practical Bounds
  on Optimal Caching with Variable Object Sizes", SIGMETRICS 2018): every hit needs its
  object kept for the whole interval since the previous request, occupying
  ``size × interval`` byte-steps, and the cache offers ``capacity × len(trace)``. Taking
  the cheapest intervals first maximizes the hits any schedule could get, so its misses
  are *at most* the optimum's. The bytes bound is the same relaxation maximizing bytes
  (a fractional knapsack: shortest intervals first).

Time is counted in requests. Both allow an object not to be cached after a miss (the
model serves its request and is dropped), as the online tiers may.
"""

from __future__ import annotations

from collections.abc import Sequence

from serval.models.eviction.replay import ReplayResult, TraceRequest

__all__ = ["belady_size", "lower_bound", "next_uses"]


def next_uses(trace: Sequence[TraceRequest]) -> list[int]:
    """For each request, the index of the next request for the same key (``len(trace)``
    when there is none)."""
    never = len(trace)
    following: dict[str, int] = {}
    out = [never] * len(trace)
    for i in range(len(trace) - 1, -1, -1):
        key = trace[i].key
        out[i] = following.get(key, never)
        following[key] = i
    return out


def belady_size(trace: Sequence[TraceRequest], capacity: int) -> ReplayResult:
    """Serve ``trace`` with ``capacity`` bytes, evicting the largest ``size × distance to
    next use`` first (Belady's MIN when all sizes are equal)."""
    nxt = next_uses(trace)
    never = 2 * len(trace)  # "not used again" ranks above any real distance
    cached: dict[str, tuple[int, int]] = {}  # key -> (size, index of next use)
    used = misses = loaded = 0
    load_s = 0.0
    for t, request in enumerate(trace):
        next_use = nxt[t] if nxt[t] < len(trace) else never
        if request.key in cached:
            cached[request.key] = (cached[request.key][0], next_use)
            continue
        misses += 1
        loaded += request.size
        load_s += request.cost
        if request.size > capacity or next_use == never:
            continue  # cannot fit, or never needed again: serve it and drop it
        cached[request.key] = (request.size, next_use)
        used += request.size
        while used > capacity:
            victim = max(cached, key=lambda k: cached[k][0] * (cached[k][1] - t))
            used -= cached.pop(victim)[0]
    return ReplayResult(len(trace), misses, loaded, load_s)


def lower_bound(trace: Sequence[TraceRequest], capacity: int) -> ReplayResult:
    """PFOO-L: no schedule with ``capacity`` bytes has fewer misses than ``misses``, nor
    loads fewer bytes than ``bytes_loaded`` (two separate bounds). ``load_s`` is the
    load time of the misses of the miss bound's relaxed schedule."""
    nxt = next_uses(trace)
    budget = capacity * len(trace)  # byte-steps the cache can offer
    intervals: list[tuple[int, int, int]] = []  # (size × length, length, index of reuse)
    for i, request in enumerate(trace):
        if nxt[i] < len(trace) and request.size <= capacity:
            length = nxt[i] - i
            intervals.append((request.size * length, length, nxt[i]))
    hit_at: set[int] = set()
    spent = 0
    for resource, _, reuse in sorted(intervals):
        if spent + resource > budget:
            break
        spent += resource
        hit_at.add(reuse)
    misses = len(trace) - len(hit_at)
    load_s = sum(r.cost for t, r in enumerate(trace) if t not in hit_at)
    return ReplayResult(len(trace), misses, _bytes_bound(trace, intervals, budget), load_s)


def _bytes_bound(
    trace: Sequence[TraceRequest], intervals: list[tuple[int, int, int]], budget: int
) -> int:
    total = sum(r.size for r in trace)
    saved = 0.0
    remaining = float(budget)
    # Value size per size × length of resource: best value density = shortest interval.
    for resource, length, _ in sorted(intervals, key=lambda iv: iv[1]):
        if resource <= remaining:
            remaining -= resource
            saved += resource / length
        else:
            saved += remaining / length
            break
    return max(0, total - int(saved))
