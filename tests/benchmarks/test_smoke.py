"""The benchmark end to end, tiny: real servers, real load, no timing asserted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import bench, http_overhead, metrics_scrape
from benchmarks._bench.cells import Cell, Role
from benchmarks._harness import wrk
from benchmarks._harness.loadgen import LoadGenerator
from benchmarks._harness.stats import compare
from tests.utils import serval_children, wait_for


def test_pyload_drives_the_bare_app() -> None:
    gen = LoadGenerator("python", processes=2)
    with http_overhead.bare_server() as url:
        timed = gen.measure(url, 3, 0.5, warmup_s=0.2)
        counted = gen.measure(url, 4, 30.0, warmup_s=0.0, requests=200)
    assert timed.requests > 0 and timed.rps > 0
    assert timed.errors.total == 0
    assert 0 < timed.p50_ms <= timed.p90_ms <= timed.p99_ms
    assert 200 <= counted.requests < 200 + 4  # overshoot: at most connections - 1
    assert counted.errors.total == 0


def test_wrk_drives_the_bare_app() -> None:
    # `make test` installs wrk (scripts/ensure-services.sh): a missing one fails here.
    assert wrk.available(), "wrk is not installed: run scripts/ensure-services.sh"
    with http_overhead.bare_server() as url:
        m = LoadGenerator("wrk").measure(url, 2, 1.0, warmup_s=0)
    assert m.requests > 0 and m.errors.total == 0


def test_http_overhead_smallest_run() -> None:
    """Bare uvicorn and serval (default options), 1 s each at 2 connections."""
    plan = http_overhead.Plan(
        duration_s=1.0,
        warmup_s=0.5,
        concurrencies=(2,),
        systems=(http_overhead.BARE, http_overhead.SERVAL),
    )
    cpu: list[http_overhead.CpuPoint] = []
    rounds = http_overhead.run_benchmark(plan, LoadGenerator.pick("auto"), cpu=cpu)
    (results,) = rounds
    wait_for(lambda: not serval_children(), timeout_s=30, what="serval to exit")
    assert [(r.system, r.concurrency) for r in results] == [
        (http_overhead.BARE, 2),
        (http_overhead.SERVAL, 2),
    ]
    for r in results:
        assert r.rps > 0 and r.requests > 0, r
        assert r.errors == 0, r
    (comparison,) = compare(results, http_overhead.BARE)
    assert comparison.rps_ratio > 0


def test_http_overhead_metrics_on_and_off() -> None:
    """serval with and without metrics, each on an instance of its own, in one run:
    the metrics verdict is computed (no timing asserted)."""
    plan = http_overhead.Plan(
        duration_s=0.5,
        warmup_s=0.2,
        concurrencies=(2,),
        systems=(http_overhead.METRICS_ON, http_overhead.METRICS_OFF),
    )
    cpu: list[http_overhead.CpuPoint] = []
    rounds = http_overhead.run_benchmark(plan, LoadGenerator.pick("auto"), cpu=cpu)
    (results,) = rounds
    wait_for(lambda: not serval_children(), timeout_s=30, what="serval to exit")
    assert [r.system for r in results] == [
        http_overhead.METRICS_ON,
        http_overhead.METRICS_OFF,
    ]
    assert all(r.rps > 0 and r.errors == 0 for r in results), results
    # The instances' process trees were found: each used CPU for its requests.
    assert sorted(p.system for p in cpu) == sorted(r.system for r in results)
    assert all(p.us_per_request > 0 for p in cpu), cpu
    (verdict,) = http_overhead.metrics_verdicts(rounds, cpu)
    assert "metrics off" in verdict.target and "CPU per request" in verdict.measured


def test_metrics_scrape_smallest_run(capsys: pytest.CaptureFixture[str]) -> None:
    metrics_scrape.main(["--models", "40", "--replicas", "1", "--scrapes", "2"])
    wait_for(lambda: not serval_children(), timeout_s=30, what="serval to exit")
    out = capsys.readouterr().out
    assert "models loaded (serval_models_loaded): 40" in out
    assert "scrape: median" in out


def test_bench_every_scenario_smallest_serval_only(tmp_path: Path) -> None:
    """`make bench` in its smallest form, serval and the limits only (no Ray, no
    LitServe): every scenario runs, nothing fails, the table, file and chart exist."""
    argv = ["--quick", "--peers", "none", "--loadgen", "python", "--duration", "0.3"]
    argv += ["--warmup", "0.2", "--mm-requests", "64", "--out", str(tmp_path)]
    argv += ["--json", str(tmp_path / "bench.json")]
    assert bench.main(argv) == 0
    wait_for(lambda: not serval_children(), timeout_s=30, what="serval to exit")
    doc = json.loads((tmp_path / "bench.json").read_text())
    cells = [Cell.from_json(c) for c in doc["cells"]]
    assert [c for c in cells if c.error] == []
    serval_points = {c.scenario for c in cells if c.role is Role.SERVAL}
    assert serval_points == {c.scenario for c in cells}  # serval measured at every point
    assert {c.system for c in cells if c.role is Role.PEER} == set()
    assert {"hello c32", "handle c1", "pipeline c32", "many models", "startup"} <= serval_points
    assert {"OIP REST c1", "OIP REST c32"} <= serval_points
    references = {(c.scenario, c.system) for c in cells if c.role is Role.REFERENCE}
    assert references == {("OIP REST c1", "serval /score"), ("OIP REST c32", "serval /score")}
    assert all(c.rps and c.rps > 0 for c in cells if c.role is Role.SERVAL and c.concurrency)
    assert (tmp_path / "bench.png").stat().st_size > 0
    assert "serval" in (tmp_path / "latest.md").read_text()


def test_protocols_smallest_run() -> None:
    """WebSocket and gRPC, direct and through serval: one short round prints the table."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "benchmarks/protocols.py", "--duration", "0.5", "--rounds", "1"],
        cwd=root,
        env={**os.environ, "SERVAL_NAMESPACE": "smoke-protocols"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for line in ("websocket serval", "grpc serval", "of the direct figure"):
        assert line in done.stdout, done.stdout
    assert serval_children() == []


def test_placement_smallest_run() -> None:
    """Placement deltas through the real Publisher and Router: bytes per change do not
    grow with the models held (whole tables would)."""
    from benchmarks import placement

    report = placement.main(["--sizes", "1000,10000", "--changes", "200", "--no-live"])
    small, large = report.in_process
    assert small.delta_bytes_per_s == pytest.approx(large.delta_bytes_per_s, rel=0.2)
    assert large.full_bytes_per_s > 5 * small.full_bytes_per_s
    assert large.delta_bytes_per_s * 100 < large.full_bytes_per_s
    assert report.live == []


def test_placement_live_smallest_run() -> None:
    """The live half: the many-models app on a registry of 2,000 models under wrk; every
    request answered, placement sent as deltas, no whole table re-sent."""
    from benchmarks import placement

    report = placement.main(["--sizes", "2000", "--changes", "50", "--duration", "2"])
    (live,) = report.live
    assert live.models == 2000 and live.rps > 0 and live.errors == 0
    assert live.loads_per_s > 0 and live.delta_bytes_per_s > 0
    assert live.whole_bytes_per_s == 0  # no replica came or went during the run
    assert live.dispatcher_mb > 0 and live.proxy_mb > 0 and live.controller_cpu >= 0
    assert serval_children() == []
