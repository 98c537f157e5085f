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
from serval.observability.snapshot import COLUMN, MODEL_COLUMNS

__all__ = ["model_families", "model_rows"]


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


def model_rows() -> dict[str, list[float]]:
    """One row per model id this replica has counted or holds (MODEL_COLUMNS)."""
    rows: dict[str, list[float]] = {}
    resident, loading = COLUMN["resident"], COLUMN["loading"]
    size, load_time = COLUMN["bytes"], COLUMN["load_time_s"]
    tail = [0.0] * (len(MODEL_COLUMNS) - COLUMN["resident"])  # the columns counted below
    for cache in _caches():
        counted: dict[str, list[int]] = cache.per_model.rows  # type: ignore[attr-defined]
        if not rows:  # the common case, one cache: no per-column additions
            rows = {model_id: [*counts, *tail] for model_id, counts in list(counted.items())}
        else:
            for model_id, counts in list(counted.items()):
                row = rows.get(model_id)
                if row is None:
                    rows[model_id] = [*counts, *tail]
                else:
                    row[: len(counts)] = map(operator.add, row, counts)
        for model_id, info in cache.describe().items():  # type: ignore[attr-defined]
            row = rows.get(model_id)
            if row is None:
                row = rows[model_id] = [0.0] * len(MODEL_COLUMNS)
            if info.get("loading"):
                row[loading] = 1.0
            else:
                row[resident] += 1.0
                row[size] += info.get("bytes", 0)
                row[load_time] = info.get("load_time_s", 0.0)
    return rows
