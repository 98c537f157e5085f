"""The cache-policy benchmark in its smallest form: traces, table and verdicts."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import cache_policies as bench

MB = 1_000_000


def test_traces_have_the_shapes_the_benchmark_promises() -> None:
    zipf = bench.trace_zipf(np.random.default_rng(1), 5_000)
    sizes = {r.key: r.size for r in zipf}
    assert len(zipf) == 5_000 and len(sizes) <= bench.N_MODELS
    assert all(MB <= s <= 100 * MB for s in sizes.values())
    assert len({r.cost for r in zipf}) > 100  # load costs vary too
    shifting = bench.trace_shifting(np.random.default_rng(1), 8_000)
    halves = shifting[:1_000], shifting[-1_000:]
    tops = [{k for k, _ in sorted(_counts(h).items(), key=lambda kv: -kv[1])[:10]} for h in halves]
    assert tops[0] != tops[1]  # the hot set moved
    one_off = bench.trace_one_off(np.random.default_rng(1), 8_000)
    tenants = _counts([r for r in one_off if r.key.startswith("once")])
    assert tenants and max(tenants.values()) <= 2  # each asks once or twice


def _counts(trace: list[bench.TraceRequest]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in trace:
        out[r.key] = out.get(r.key, 0) + 1
    return out


def test_no_policy_beats_the_lower_bound() -> None:
    trace = bench.trace_zipf(np.random.default_rng(2), 4_000)
    results = bench.run_trace("zipf", trace, 2_000 * MB)
    bound = results[bench.BOUND]
    assert set(results) >= {bench.BELADY, bench.BOUND, "gdsf", "lfu", "lru", "gdsf+tinylfu"}
    for label, r in results.items():
        assert r.requests == len(trace)
        assert r.misses >= bound.misses, label
        assert r.bytes_loaded >= bound.bytes_loaded, label


def test_smallest_run_prints_the_table_and_verdicts(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--requests", "3000", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    for trace in bench.TRACES:
        assert f"== {trace}: " in out
    rows = [line.split("  ")[0] for line in out.splitlines()]
    for label in ("belady-size (offline)", "lower bound (offline)", "gdsf", "lfu", "lru"):
        assert rows.count(label) == 3, label  # a row in each trace's table
    verdict_lines = [line for line in out.splitlines() if line.startswith(("PASS", "MISS"))]
    assert len(verdict_lines) == 4
    assert "x belady" in out
