"""deploy/grafana/serval-dashboard.json queries the families serval exports, by the
names the issue and the metrics code give them."""

from __future__ import annotations

import json
import os
import re

from serval.observability.families import FAMILIES

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "serval-dashboard.json")

# Issue 12's list, written as Prometheus exposes them (counters end in _total).
ISSUE_FAMILIES = [
    "serval_http_requests_total",
    "serval_http_request_latency_seconds",
    "serval_http_request_errors_total",
    "serval_handle_requests_total",
    "serval_replica_processing_latency_seconds",
    "serval_replica_ongoing_requests",
    "serval_router_queued_requests",
    "serval_deployment_replicas",
    "serval_replica_restarts_total",
    "serval_requests_rejected_total",
    "serval_model_loads_total",
    "serval_model_load_latency_seconds",
    "serval_model_cache_hits_total",
    "serval_model_cache_misses_total",
    "serval_model_evictions_total",
    "serval_models_loaded",
    "serval_model_cache_bytes",
    "serval_warm_tier_errors_total",
    "serval_batch_size",
    "serval_deployment_target_replicas",
    "serval_autoscaling_ongoing_requests",
]


def _exprs() -> list[str]:
    with open(DASHBOARD, encoding="utf-8") as f:
        dashboard = json.load(f)
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def _family(series: str) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        if series.endswith(suffix):
            return series[: -len(suffix)]
    return series


def test_every_query_names_an_exported_family() -> None:
    exprs = _exprs()
    assert len(exprs) >= 20
    for expr in exprs:
        for series in re.findall(r"\bserval_[a-z_]+", expr):
            family = _family(series)
            name = family[: -len("_total")] if family.endswith("_total") else family
            assert name in FAMILIES, (series, expr)
            kind = FAMILIES[name].kind
            assert family.endswith("_total") == (kind == "counter"), (series, kind)
            assert (series != family) == (kind == "histogram"), (series, kind)


def test_the_issues_families_all_have_a_panel() -> None:
    used = {_family(s) for e in _exprs() for s in re.findall(r"\bserval_[a-z_]+", e)}
    assert [f for f in ISSUE_FAMILIES if f not in used] == []
