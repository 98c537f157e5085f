"""The many-models families of a replica, read from its caches and store at scrape time.

The hot tier (each ``@serval.multiplexed`` cache) keeps counters per model id
(:class:`~serval.models.stats.ModelCounters`); they travel as rows
(:data:`~serval.observability.snapshot.MODEL_COLUMNS`) and the proxy keeps per-model
series for the top N models only. The warm and cold tiers are counted per process,
without a model id.
"""

from __future__ import annotations

import operator
import sys

from serval.observability import snapshot as snap
from serval.observability.snapshot import pack_models

__all__ = ["model_families", "model_table"]


def _caches() -> list[object]:
    multiplexed = sys.modules.get("serval.models.multiplexed")
    return [] if multiplexed is None else list(multiplexed.caches())


def model_families() -> list[snap.Family]:
    """Tier gauges and the warm and cold tiers' counters (empty without a model cache)."""
    models = sys.modules.get("serval.models")
    if models is None or not _caches():
        return []
    stats = models.stats()
    hot, warm, cold = stats.hot, stats.warm, stats.cold
    return [
        snap.gauge("serval_models_loaded", (), [((), float(hot.entries))]),
        snap.gauge(
            "serval_model_cache_bytes",
            ("tier",),
            [(("hot",), float(hot.bytes_used)), (("warm",), float(warm.bytes_used))],
        ),
        snap.counter(
            "serval_model_loads",
            ("tier", "outcome"),
            [
                (("warm", "success"), float(warm.hits)),
                (("warm", "failure"), float(warm.rejected)),
                (("cold", "success"), float(cold.loads)),
                (("cold", "failure"), float(cold.load_failures)),
            ],
        ),
        snap.counter("serval_model_cache_hits", ("tier",), [(("warm",), float(warm.hits))]),
        snap.counter("serval_model_cache_misses", ("tier",), [(("warm",), float(warm.misses))]),
        snap.counter("serval_model_evictions", ("tier",), [(("warm",), float(warm.evictions))]),
        snap.counter(
            "serval_warm_tier_errors",
            ("kind",),
            [(("rejected",), float(warm.rejected)), (("outage",), float(warm.outages))],
        ),
    ]


def model_table() -> tuple[list[str], bytes]:
    """This replica's model rows, packed (:func:`~serval.observability.snapshot.
    pack_models`): the caches keep them in that layout, so with one cache (the common
    case) this is a copy of its ids and one ``tobytes()``; several caches are summed."""
    caches = _caches()
    if len(caches) == 1:
        counters = caches[0].per_model  # type: ignore[attr-defined]
        return list(counters.index), counters.values.tobytes()
    rows: dict[str, list[float]] = {}
    for cache in caches:
        counters = cache.per_model  # type: ignore[attr-defined]
        for model_id in list(counters.index):
            counts = counters.row(model_id)
            row = rows.get(model_id)
            if row is None:
                rows[model_id] = counts
            else:
                row[:] = map(operator.add, row, counts)
    return pack_models(rows)
