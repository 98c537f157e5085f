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
    for label in ("belady-size (offline)", "lower bound (offline)", bench.DEFAULT, "lfu", "lru"):
        assert rows.count(label) == 3, label  # a row in each trace's table
    assert rows.count(bench.ORACLE) == 3 and rows.count(bench.WINDOW) == 1  # shifting only
    verdict_lines = [line for line in out.splitlines() if line.startswith(("PASS", "MISS"))]
    assert len(verdict_lines) == 6
    oracle_verdicts = [line for line in verdict_lines if "oracle on" in line]
    assert [line.split(" on ")[1].split(":")[0] for line in oracle_verdicts] == ["zipf", "shifting"]
    assert all("(belady " in line for line in oracle_verdicts)
    assert "x belady" in out and "x oracle" in out


def test_traces_carry_the_distribution_they_were_drawn_from() -> None:
    zipf = bench.trace_zipf(np.random.default_rng(4), 20_000)
    (phase,) = zipf.phases
    assert sum(phase.probabilities.values()) == pytest.approx(1.0)
    counts = _counts(zipf)
    top = max(phase.probabilities, key=lambda k: phase.probabilities[k])
    assert counts[top] / len(zipf) == pytest.approx(phase.probabilities[top], rel=0.1)
    shifting = bench.trace_shifting(np.random.default_rng(4), 8_000)
    assert [p.start for p in shifting.phases] == [i * 1_000 for i in range(8)]
    assert shifting.phases[0].probabilities != shifting.phases[-1].probabilities
    mixed = bench.average_phase(shifting)
    assert sum(mixed.probabilities.values()) == pytest.approx(1.0)
    assert bench.trace_one_off(np.random.default_rng(4), 8_000).independent is False


def test_oracles_bound_the_online_policies_where_popularity_is_known() -> None:
    # Long enough that luck cannot beat an oracle by a few percent (about 300 misses each).
    zipf = bench.trace_zipf(np.random.default_rng(5), 12_000)
    results = bench.run_trace("zipf", zipf, 2_000 * MB)
    oracle = results[bench.ORACLE]
    assert results[bench.BELADY].misses < oracle.misses
    for label in ("lru", "lfu"):
        assert results[label].misses > oracle.misses, label
    shifting = bench.trace_shifting(np.random.default_rng(5), 16_000)
    results = bench.run_trace("shifting", shifting, 2_000 * MB)
    assert results[bench.WINDOW].misses < results[bench.ORACLE].misses
