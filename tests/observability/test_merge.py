"""Merging snapshots: HELP/TYPE once, process labels added, the top-N model rule."""

from __future__ import annotations

from serval.observability import snapshot as snap
from serval.observability.http import HttpMetrics
from serval.observability.merge import merge, render
from serval.observability.snapshot import MODEL_COLUMNS, Snapshot
from serval.observability.summary import summarize
from tests.observability._scrape import parse


def _row(requests: int, hits: int = 0, resident: int = 0, size: int = 0) -> list[float]:
    row = [0.0] * len(MODEL_COLUMNS)
    row[0], row[1], row[2] = requests, hits, requests - hits
    row[6], row[8] = resident, size
    return row


def _replica(rid: str, models: dict[str, list[float]]) -> Snapshot:
    ongoing = snap.gauge("serval_replica_ongoing_requests", (), [((), 1.0)])
    labels = {"application": "app", "deployment": "Scorer", "replica": rid}
    return Snapshot("replica", labels, [ongoing], *snap.pack_models(models))


def test_top_n_models_and_the_rest_summed() -> None:
    one = _replica("r1", {"a": _row(10, 9, 1, 100), "b": _row(5), "c": _row(1, 0, 1, 7)})
    two = _replica("r2", {"b": _row(6, 5, 1, 50), "d": _row(2), "e": _row(1)})
    m = parse(render(merge([one, two], top_n=2)).decode())
    # b (11) and a (10) are the top 2 over both replicas; c, d, e are "__other__"
    assert m.label_values("serval_model_requests_total", "model_id") == {"a", "b", "__other__"}
    assert m.value("serval_model_requests_total", replica="r1", model_id="__other__") == 1
    assert m.value("serval_model_requests_total", replica="r2", model_id="__other__") == 3
    assert m.value("serval_model_requests_total", model_id="b") == 11
    assert m.value("serval_model_cache_hits_total", tier="hot", model_id="a") == 9
    assert m.value("serval_model_resident_bytes", replica="r1", model_id="__other__") == 7
    assert m.value("serval_replica_ongoing_requests", replica="r2") == 1
    text = render(merge([one, two], top_n=2)).decode()
    assert text.count("# TYPE serval_replica_ongoing_requests gauge") == 1


def test_ten_thousand_models_stay_small() -> None:
    replicas = [
        _replica(f"r{i}", {f"tenant{j}": _row(j % 97 + 1, 1, 1, 1000) for j in range(i, 10_000, 4)})
        for i in range(4)
    ]
    text = render(merge(replicas, top_n=100))
    m = parse(text.decode())
    ids = m.label_values("serval_model_requests_total", "model_id")
    assert len(ids) == 101 and "__other__" in ids
    total = sum(j % 97 + 1 for j in range(10_000))
    assert m.value("serval_model_requests_total") == total  # nothing lost in the folding
    assert len(text) < 1_000_000


def test_summary_has_routes_models_and_deployments() -> None:
    http = HttpMetrics()
    for seconds in (0.0004, 0.0004, 0.0004, 0.003):
        http.observe("app", "D", "/x", "GET", 200, seconds)
    http.observe("app", "D", "/x", "GET", 500, 0.5)
    proxy = Snapshot("proxy", {}, http.families())
    replica = _replica("r1", {"a": _row(4, 3, 1, 10)})
    out = summarize([proxy, replica], top_n=10)
    (route,) = out["routes"]
    assert (route["requests"], route["errors"], route["server_errors"]) == (5, 1, 1)
    assert 0 < route["latency_ms"]["p50"] <= 0.5
    assert 250 < route["latency_ms"]["p99"] <= 500
    assert out["models"]["hit_ratio"] == 0.75
    assert out["models"]["heat"][0]["model_id"] == "a"
    assert out["processes"] == {"proxy": 1, "controller": 0, "replica": 1}
