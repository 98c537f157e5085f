"""The instance's figures as plain data, for pages that show them (``/-/dashboard``).

Call it in the proxy (``ctx``: the proxy's ProcessContext, ``app.ctx``)::

    from serval.observability.summary import instance_summary

    data = await instance_summary(app.ctx)          # JSON-ready dict
    data["routes"]   # per (application, deployment, route): requests, errors (>= 400),
                     # server_errors (>= 500), latency_ms p50/p90/p99 (since start)
    data["replicas"] # per replica: application, deployment, replica, ongoing, processed
    data["deployments"]  # per deployment: replicas by state, target
    data["models"]   # {"hit_ratio", "hits", "misses", "loads", "evictions",
                     #  "heat": [{model_id, replica, application, deployment, resident,
                     #            loading, requests, hits, bytes, load_time_s}, ...]}

Counters are cumulative since each process started; a rate is the difference between
two calls divided by the difference of their ``time`` (seconds since the epoch). The heat
map lists the top N models by requests (``SERVAL_METRICS_TOP_MODELS``, or ``top_n``),
one entry per replica that holds, loads or has served the model.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from serval._env import read_env
from serval.observability.merge import model_rows, top_models
from serval.observability.scrape import gather
from serval.observability.snapshot import COLUMN, Family, Snapshot
from serval.observability.tables import LATENCY_BUCKETS_S

__all__ = ["instance_summary", "summarize"]


async def instance_summary(ctx: Any, top_n: int | None = None) -> dict[str, Any]:
    """Gather every process's metrics (as ``/-/metrics`` does) and summarize them."""
    snapshots = await gather(ctx)
    n = read_env().metrics_top_models if top_n is None else top_n
    return await asyncio.to_thread(summarize, snapshots, n)


def summarize(snapshots: list[Snapshot], top_n: int) -> dict[str, Any]:
    """The summary of already gathered snapshots (see the module docs)."""
    return {
        "time": time.time(),
        "processes": {
            kind: sum(s.process == kind for s in snapshots)
            for kind in ("proxy", "controller", "replica")
        },
        "routes": _routes(snapshots),
        "replicas": _replicas(snapshots),
        "deployments": _deployments(snapshots),
        "models": _models(snapshots, top_n),
    }


def _families(snapshots: list[Snapshot], name: str) -> list[tuple[Snapshot, Family]]:
    return [(s, f) for s in snapshots for f in s.families if f.name == name]


def _routes(snapshots: list[Snapshot]) -> list[dict[str, Any]]:
    routes: dict[tuple[str, str, str], dict[str, Any]] = {}
    les = [*LATENCY_BUCKETS_S, float("inf")]
    for _, fam in _families(snapshots, "serval_http_request_latency_seconds"):
        for s in fam.samples:
            if not s.name.endswith("_bucket"):
                continue
            lb = s.labels
            key = (lb["application"], lb["deployment"], lb["route"])
            entry = routes.setdefault(
                key,
                {"requests": 0.0, "errors": 0.0, "server_errors": 0.0, "_b": [0.0] * len(les)},
            )
            i = les.index(float(lb["le"]))
            entry["_b"][i] += s.value
            if lb["le"] == "+Inf":
                status = int(lb["status_code"])
                entry["requests"] += s.value
                entry["errors"] += s.value if status >= 400 else 0.0
                entry["server_errors"] += s.value if status >= 500 else 0.0
    out = []
    for (app, dep, route), entry in sorted(routes.items()):
        buckets = entry.pop("_b")
        entry["latency_ms"] = {f"p{q}": _quantile(q / 100, les, buckets) for q in (50, 90, 99)}
        out.append({"application": app, "deployment": dep, "route": route, **entry})
    return out


def _quantile(q: float, les: list[float], cumulative: list[float]) -> float | None:
    """histogram_quantile's estimate (linear within the bucket), in milliseconds."""
    total = cumulative[-1]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for le, count in zip(les, cumulative, strict=True):
        if count >= rank:
            if le == float("inf"):
                return round(lower * 1000, 3)
            inside = count - below
            fraction = (rank - below) / inside if inside else 1.0
            return round((lower + (le - lower) * fraction) * 1000, 3)
        lower, below = le, count
    return None


def _replicas(snapshots: list[Snapshot]) -> list[dict[str, Any]]:
    out = []
    for s in snapshots:
        if s.process != "replica":
            continue
        entry: dict[str, Any] = {**s.labels, "ongoing": 0.0, "processed": 0.0}
        for fam in s.families:
            if fam.name == "serval_replica_ongoing_requests" and fam.samples:
                entry["ongoing"] = fam.samples[0].value
            elif fam.name == "serval_replica_processing_latency_seconds":
                entry["processed"] = sum(x.value for x in fam.samples if x.name.endswith("_count"))
        out.append(entry)
    return sorted(out, key=lambda e: (e["application"], e["deployment"], e["replica"]))


def _deployments(snapshots: list[Snapshot]) -> list[dict[str, Any]]:
    deps: dict[tuple[str, str], dict[str, Any]] = {}
    for _, fam in _families(snapshots, "serval_deployment_replicas"):
        for s in fam.samples:
            key = (s.labels["application"], s.labels["deployment"])
            deps.setdefault(key, {"replicas": {}})["replicas"][s.labels["state"]] = s.value
    for _, fam in _families(snapshots, "serval_deployment_target_replicas"):
        for s in fam.samples:
            key = (s.labels["application"], s.labels["deployment"])
            deps.setdefault(key, {"replicas": {}})["target"] = s.value
    return [{"application": a, "deployment": d, **v} for (a, d), v in sorted(deps.items())]


def _models(snapshots: list[Snapshot], top_n: int) -> dict[str, Any]:
    top = top_models(snapshots, top_n)
    heat = []
    totals = dict.fromkeys(("hits", "misses", "loads", "evictions"), 0.0)
    for s in snapshots:
        if not s.model_ids:
            continue
        for model_id, row in sorted(model_rows(s, top).items()):
            for name in totals:
                totals[name] += row[COLUMN[name]]
            heat.append(
                {
                    "model_id": model_id,
                    "replica": s.labels.get("replica", ""),
                    "application": s.labels.get("application", ""),
                    "deployment": s.labels.get("deployment", ""),
                    **{
                        c: row[COLUMN[c]]
                        for c in ("resident", "loading", "requests", "hits", "bytes", "load_time_s")
                    },
                }
            )
    asked = totals["hits"] + totals["misses"]
    return {
        "hit_ratio": totals["hits"] / asked if asked else None,
        **totals,
        "heat": heat,
    }
