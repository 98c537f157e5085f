"""Many processes' snapshots into one Prometheus text, and the top-N model rule.

Each family's HELP and TYPE appear once; its samples come from every process, with the
process's own labels (a replica's ``application``, ``deployment``, ``replica``) added
where a sample lacks them. Per-model series exist only for the ``top_n`` models with the
most requests over the whole instance; every other model's counters are summed under
``model_id="__other__"``, so a 10,000-tenant instance exports a few hundred model
series, not tens of thousands.
"""

from __future__ import annotations

import heapq
import logging
import operator
from collections.abc import Iterable
from typing import Any

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import CollectorRegistry
from prometheus_client.samples import Sample

from serval.observability.families import FAMILIES, OTHER_MODELS
from serval.observability.snapshot import COLUMN, MODEL_COLUMNS, Snapshot, unpack_models

__all__ = ["merge", "model_rows", "render", "top_models"]

logger = logging.getLogger("serval.observability")

ModelRows = dict[tuple[str, str], list[float]]  # (replica key, model id) -> MODEL_COLUMNS

# Per-model families built from the rows: (family, column, extra labels).
_MODEL_SERIES: tuple[tuple[str, str, str, dict[str, str]], ...] = (
    ("serval_model_requests", "_total", "requests", {}),
    ("serval_model_cache_hits", "_total", "hits", {"tier": "hot"}),
    ("serval_model_cache_misses", "_total", "misses", {"tier": "hot"}),
    ("serval_model_loads", "_total", "loads", {"tier": "hot", "outcome": "success"}),
    ("serval_model_loads", "_total", "load_failures", {"tier": "hot", "outcome": "failure"}),
    ("serval_model_evictions", "_total", "evictions", {"tier": "hot"}),
    ("serval_model_resident_bytes", "", "bytes", {}),
)


def top_models(snapshots: Iterable[Snapshot], top_n: int) -> set[str]:
    """The ``top_n`` model ids with the most requests over all ``snapshots``."""
    totals: dict[str, float] = {}
    requests, width = COLUMN["requests"], len(MODEL_COLUMNS)
    for snapshot in snapshots:
        if not snapshot.model_ids:
            continue
        ids, values = unpack_models(snapshot)
        counts = values[requests::width]
        if not totals:
            totals = dict(zip(ids, counts, strict=True))
        else:
            get = totals.get
            for model_id, n in zip(ids, counts, strict=True):
                totals[model_id] = get(model_id, 0.0) + n
    if len(totals) <= top_n:
        return set(totals)
    return {model_id for model_id, _ in heapq.nlargest(top_n, totals.items(), key=_count)}


def _count(item: tuple[str, float]) -> float:
    return item[1]


def model_rows(snapshot: Snapshot, top: set[str]) -> dict[str, list[float]]:
    """One snapshot's model rows for the ids in ``top``, and the others summed into one
    row, ``__other__`` (column sums in C, minus the few top rows)."""
    ids, values = unpack_models(snapshot)
    width = len(MODEL_COLUMNS)
    out: dict[str, list[float]] = {}
    other = [sum(values[c::width]) for c in range(width)]
    for i, model_id in enumerate(ids):
        if model_id in top:
            row = out[model_id] = values[i * width : (i + 1) * width].tolist()
            other = list(map(operator.sub, other, row))
    if len(out) < len(ids):
        out[OTHER_MODELS] = other
    return out


def merge(snapshots: list[Snapshot], top_n: int) -> list[Metric]:
    """Every snapshot's families as prometheus-client metrics, per-model series limited
    to the top ``top_n`` models (module docs)."""
    metrics: dict[str, Metric] = {}

    def family(name: str, kind: str, help_text: str) -> Metric | None:
        metric = metrics.get(name)
        if metric is None:
            metric = metrics[name] = Metric(name, help_text, kind)
        elif metric.type != kind:
            logger.warning("metric %r is a %s in one process and a %s in another", name,
                           metric.type, kind)  # fmt: skip
            return None
        return metric

    kinds: dict[str, int] = {}
    for snapshot in snapshots:
        kinds[snapshot.process] = kinds.get(snapshot.process, 0) + 1
        extra = snapshot.labels
        for fam in snapshot.families:
            metric = family(fam.name, fam.kind, fam.help)
            if metric is None:
                continue
            add = metric.samples.append
            for s in fam.samples:
                add(Sample(s.name, {**extra, **s.labels} if extra else s.labels, s.value))
    top = top_models(snapshots, top_n)
    for snapshot in snapshots:
        if not snapshot.model_ids:
            continue
        rows = model_rows(snapshot, top)
        for name, suffix, column, labels in _MODEL_SERIES:
            spec = FAMILIES[name]
            metric = family(name, spec.kind, spec.help)
            if metric is None:
                continue
            i = COLUMN[column]
            for model_id, row in sorted(rows.items()):
                if row[i] or column == "requests":
                    all_labels = {**snapshot.labels, **labels, "model_id": model_id}
                    metric.samples.append(Sample(name + suffix, all_labels, row[i]))
    spec = FAMILIES["serval_metrics_scrape_processes"]
    scraped = Metric("serval_metrics_scrape_processes", spec.help, spec.kind)
    for kind, n in sorted(kinds.items()):
        scraped.samples.append(Sample(scraped.name, {"process": kind}, float(n)))
    metrics[scraped.name] = scraped
    return list(metrics.values())


class _Collected:
    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> list[Metric]:
        return self.metrics


def render(metrics: list[Metric]) -> bytes:
    """The Prometheus text format (prometheus-client's writer)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collected(metrics))
    return generate_latest(registry)


def as_dict(metrics: list[Metric]) -> dict[str, Any]:
    """``{family: [(sample name, labels, value), …]}``: the merged families as data."""
    return {m.name: [(s.name, s.labels, s.value) for s in m.samples] for m in metrics}
