"""The orchestrator's logic (benchmarks/bench.py, _bench/, scenarios/), without servers:
scenario selection, settings, serval's ratios, the table, the result file, the chart,
and how a failing system's process becomes a failed cell."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import bench, scenarios
from benchmarks._bench import chart, report
from benchmarks._bench.cells import Cell, Role, format_ratio, ratios
from benchmarks._bench.children import ChildError, parse_line, run_child, serving
from benchmarks._harness import pyload, wrk
from benchmarks._harness.loadgen import LoadGenerator
from benchmarks._harness.results import SCHEMA_VERSION, load_results
from benchmarks.scenarios._context import Context, Settings
from benchmarks.systems.mlserver_apps import hide_httptools, uses_httptools

HELLO = [
    Cell("hello c32", "bare uvicorn", Role.LIMIT, rps=20_000.0, p50_ms=1.0, p99_ms=2.0),
    Cell("hello c32", "serval", Role.SERVAL, rps=8_000.0, p50_ms=2.0, p99_ms=9.0, requests=5),
    Cell("hello c32", "Ray Serve", Role.PEER, rps=1_000.0, p50_ms=20.0, p99_ms=40.0),
    Cell("hello c32", "LitServe", Role.PEER, error="exited with code 1 before 'ready'\ntrace"),
]
MANY = [
    Cell("many models", "Belady bound", Role.LIMIT, loads=400, compare_on="loads"),
    Cell("many models", "serval", Role.SERVAL, rps=500.0, loads=480),
    Cell("many models", "Ray Serve", Role.PEER, rps=50.0, loads=900),
]
STARTUP = [
    Cell("startup", "serval", Role.SERVAL, startup_s=1.0, compare_on="startup_s"),
    Cell("startup", "Ray Serve", Role.PEER, startup_s=8.0, compare_on="startup_s"),
]
CELLS = HELLO + MANY + STARTUP


# -- scenario selection and settings --------------------------------------------------------


@pytest.mark.parametrize("names", [None, "", "all", []])
def test_no_selection_means_every_scenario_in_table_order(names: str | None) -> None:
    assert scenarios.select(names) == list(scenarios.SCENARIOS)


def test_selection_keeps_table_order() -> None:
    assert scenarios.select("startup, hello") == ["hello", "startup"]
    assert scenarios.select(["many_models"]) == ["many_models"]


def test_unknown_scenario_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown scenario.*'nope'.*many_models"):
        scenarios.select("hello,nope")


def test_every_scenario_loads_a_runner() -> None:
    for name in scenarios.SCENARIOS:
        assert callable(scenarios.load(name))


def test_peers() -> None:
    assert bench.parse_peers("ray,litserve") == ("ray", "litserve")
    assert bench.parse_peers("mlserver") == ("mlserver",)
    assert bench.parse_peers("none") == () == bench.parse_peers("")
    with pytest.raises(ValueError, match="unknown peer"):
        bench.parse_peers("torchserve")


def test_quick_settings_and_overrides() -> None:
    quick = bench.settings_from(bench.parse_args(["--quick", "--peers", "ray"]))
    assert quick.quick and quick.duration_s == 1.0 and quick.peers == ("ray",)
    assert quick.many_models_requests < Settings().many_models_requests
    custom = bench.settings_from(
        bench.parse_args(["--duration", "0.5", "--warmup", "0.1", "--mm-requests", "50"])
    )
    assert (custom.duration_s, custom.warmup_s, custom.many_models_requests) == (0.5, 0.1, 50)
    assert not custom.quick and custom.peers == ("ray", "litserve", "mlserver")
    assert custom.mlserver.endswith(".venv-mlserver/bin/mlserver")
    chosen = bench.settings_from(bench.parse_args(["--mlserver", "/opt/mls/bin/mlserver"]))
    assert chosen.mlserver == "/opt/mls/bin/mlserver"


def test_scenario_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCENARIO", "many_models")  # `make bench SCENARIO=many_models`
    assert bench.parse_args([]).scenario == "many_models"


def test_peer_systems_follow_the_scenario() -> None:
    s = Settings(peers=("litserve", "ray"))
    assert s.peer_systems(("Ray Serve",)) == ["Ray Serve"]
    assert Settings(peers=()).peer_systems(("Ray Serve", "LitServe")) == []


def test_outputs_full_run_and_subset(tmp_path: Path) -> None:
    assert bench.outputs(list(scenarios.SCENARIOS), tmp_path) == (
        tmp_path / "bench.png",
        tmp_path / "latest.md",
    )
    assert bench.outputs(["hello", "startup"], tmp_path) == (
        tmp_path / "bench-hello-startup.png",
        tmp_path / "latest-hello-startup.md",
    )


# -- serval's ratios ------------------------------------------------------------------------


def test_ratios_are_serval_over_each_other_system_on_its_metric() -> None:
    got = {(r.scenario, r.other): r for r in ratios(CELLS)}
    assert got["hello c32", "bare uvicorn"].value == pytest.approx(0.4)
    assert got["hello c32", "Ray Serve"].value == pytest.approx(8.0)
    assert got["many models", "Belady bound"].metric == "loads"
    assert got["many models", "Belady bound"].value == pytest.approx(1.2)
    assert got["many models", "Ray Serve"].value == pytest.approx(10.0)  # on req/s
    assert got["startup", "Ray Serve"].value == pytest.approx(0.125)
    assert got["startup", "Ray Serve"].lower_is_better
    assert ("hello c32", "serval") not in got


def test_a_failed_cell_has_no_ratio() -> None:
    (lit,) = [r for r in ratios(HELLO) if r.other == "LitServe"]
    assert math.isnan(lit.value) and format_ratio(lit) == "n/a"
    failed_serval = [Cell("x", "serval", Role.SERVAL, error="boom"), *MANY[:1]]
    assert all(math.isnan(r.value) for r in ratios([*failed_serval]))


def test_no_ratio_without_a_serval_cell() -> None:
    assert ratios([HELLO[0], HELLO[2]]) == []


def test_ratio_formatting() -> None:
    by_other = {r.other: format_ratio(r) for r in ratios(CELLS) if r.scenario != "hello c32"}
    assert by_other["Belady bound"] == "1.20x loads"
    assert by_other["Ray Serve"] == "0.12x time"  # the last one: startup
    tiny = ratios([Cell("h", "serval", Role.SERVAL, rps=3.0), Cell("h", "d", Role.LIMIT, rps=4e3)])
    assert format_ratio(tiny[0]) == "0.00075x"


def test_cell_metric_is_validated() -> None:
    with pytest.raises(ValueError, match="compare_on='p50'"):
        Cell("x", "serval", Role.SERVAL, compare_on="p50")


# -- the table ------------------------------------------------------------------------------


def test_rows_group_by_scenario_limit_serval_then_peers() -> None:
    shuffled = [HELLO[2], HELLO[1], *STARTUP, HELLO[0], HELLO[3]]
    rows = report.rows(shuffled)
    assert [r[0][0] for r in rows] == [
        "bare uvicorn (limit)",
        "serval",
        "Ray Serve",
        "LitServe",
        "serval",
        "Ray Serve",
    ]
    assert [last for _, last in rows] == [False, False, False, True, False, True]


def test_rows_show_figures_ratios_and_failures() -> None:
    rows = {text[0]: text for text, _ in report.rows(HELLO)}
    assert rows["serval"][2] == "8,000 req/s" and rows["serval"][7] == ""
    assert rows["Ray Serve"][7] == "8.00x"
    assert rows["bare uvicorn (limit)"][7] == "0.40x"
    assert rows["LitServe"][5] == "failed" and rows["LitServe"][7] == "n/a"
    many = {text[0]: text for text, _ in report.rows(MANY)}
    assert many["Belady bound (limit)"][6] == "400 loads"
    assert many["Belady bound (limit)"][5] == ""  # not a load test: no error count


def test_a_reference_row_follows_serval_and_gets_a_ratio(tmp_path: Path) -> None:
    """The OIP scenario: serval's own /score beside its OIP calls, then the peer."""
    oip = [
        Cell("OIP REST c32", "MLServer", Role.PEER, rps=1_000.0),
        Cell("OIP REST c32", "serval /score", Role.REFERENCE, rps=5_000.0),
        Cell("OIP REST c32", "serval", Role.SERVAL, rps=4_500.0),
    ]
    rows = [text for text, _ in report.rows(oip)]
    assert [r[0] for r in rows] == ["serval", "serval /score", "MLServer"]
    assert [r[7] for r in rows] == ["", "0.90x", "4.50x"]
    assert chart.draw(oip, tmp_path / "oip.png", "oip").stat().st_size > 0


def test_failures_list_the_first_line_of_each_error() -> None:
    assert report.failures(CELLS) == ["LitServe / hello c32: exited with code 1 before 'ready'"]


def test_ceiling_is_bare_uvicorn_at_the_most_connections() -> None:
    cells = [
        Cell("hello c1", "bare uvicorn", Role.LIMIT, rps=9_000.0, concurrency=1),
        Cell("hello c32", "bare uvicorn", Role.LIMIT, rps=30_000.0, concurrency=32),
    ]
    assert ">= 30,000 req/s (wrk" in report.ceiling_line(cells, "wrk 4.1")
    assert "32 connections" in report.ceiling_line(cells, "wrk 4.1")
    assert "not measured" in report.ceiling_line(MANY, "wrk 4.1")


def test_table_renders() -> None:
    t = report.table(CELLS, "title")
    assert t.row_count == len(CELLS) and len(t.columns) == len(report.HEADERS)


# -- result file, summary, chart ------------------------------------------------------------


def test_result_file_schema(tmp_path: Path) -> None:
    path = report.save(CELLS, {"quick": True}, {"ceiling": "c"}, tmp_path / "r.json")
    doc, rows = load_results(path)  # the harness's schema: readable by its loader
    assert doc["schema_version"] == SCHEMA_VERSION and doc["benchmark"] == "bench"
    machine = doc["machine"]
    assert {"cpu_model", "cpu_count", "python", "platform", "versions"} <= set(machine)
    assert {"serval", "ray", "litserve", "uvicorn"} <= set(machine["versions"])
    assert [(r.system, r.scenario) for r in rows] == [
        (c.system, c.scenario) for c in CELLS if c.rps is not None and c.ok
    ]
    assert [Cell.from_json(c) for c in doc["cells"]] == CELLS
    lit = [r for r in doc["ratios"] if r["other"] == "LitServe"]
    assert lit == [{"scenario": "hello c32", "other": "LitServe", "metric": "rps", "value": None}]
    assert doc["settings"] == {"quick": True} and doc["ceiling"] == "c"
    json.loads(path.read_text())  # strict JSON: no NaN


def test_markdown_summary() -> None:
    md = report.markdown(
        CELLS, command="python benchmarks/bench.py --quick", lines=["x"], chart="b.png"
    )
    assert "`python benchmarks/bench.py --quick`" in md and "![chart](b.png)" in md
    assert "| serval | hello c32 | 8,000 req/s |" in md
    assert "- FAILED LitServe / hello c32" in md and "cores" in md


def test_chart_panels_per_scenario_and_metric(tmp_path: Path) -> None:
    got = [
        (point, metric, [c.system for c in group]) for point, metric, group in chart.panels(CELLS)
    ]
    assert got == [
        ("hello c32", "rps", ["bare uvicorn", "serval", "Ray Serve", "LitServe"]),
        ("many models", "rps", ["serval", "Ray Serve"]),
        ("many models", "loads", ["Belady bound", "serval", "Ray Serve"]),
        ("startup", "startup_s", ["serval", "Ray Serve"]),
    ]
    path = chart.draw(CELLS, tmp_path / "c.png", "test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- children and failures ------------------------------------------------------------------


def test_parse_line() -> None:
    assert parse_line('SERVAL_BENCH {"kind": "ready", "url": "u"}') == {"kind": "ready", "url": "u"}
    assert parse_line("INFO ray started") is None


def test_a_failing_child_is_an_error_with_its_stderr() -> None:
    with pytest.raises(ChildError, match=r"(?s)exited with code 2.*invalid choice"):
        run_child("direct", ["no-such-command"], timeout_s=60)


def test_mlserver_missing_is_an_error_naming_the_fix(tmp_path: Path) -> None:
    args = ["--model", str(tmp_path / "m.joblib"), "--mlserver", str(tmp_path / "mlserver")]
    with (
        pytest.raises(ChildError, match=r"(?s)exited with code 1.*make bench-env"),
        serving("mlserver_apps", "oip", timeout_s=60, args=args),
    ):
        pass


def test_attempt_turns_a_failure_into_failed_cells() -> None:
    ctx = Context(Settings(), LoadGenerator("python"))

    def boom() -> list[Cell]:
        raise ChildError("no 'ready' within 1s\nlast words")

    cells = ctx.attempt(["a", "b"], "Ray Serve", Role.PEER, boom)
    assert [(c.scenario, c.system, c.role, c.ok) for c in cells] == [
        ("a", "Ray Serve", Role.PEER, False),
        ("b", "Ray Serve", Role.PEER, False),
    ]
    assert "last words" in cells[0].error
    ok = ctx.attempt(["a"], "serval", Role.SERVAL, lambda: [Cell("a", "serval", Role.SERVAL)])
    assert ok == [Cell("a", "serval", Role.SERVAL)]


# -- the load generator's POST (LitServe takes only JSON POSTs) -----------------------------


def test_post_request_bytes() -> None:
    body = b'{"text": "hi"}'
    assert pyload.build_request("h", 8, "/p", body) == (
        b"POST /p HTTP/1.1\r\nHost: h:8\r\nContent-Type: application/json\r\n"
        b"Content-Length: 14\r\n\r\n" + body
    )


def test_wrk_post_lua_escapes_the_body() -> None:
    lua = wrk.post_lua(b'{"a": "b\\\\c"}')
    assert 'wrk.method = "POST"' in lua
    assert 'wrk.body = "{\\"a\\": \\"b\\\\\\\\c\\"}"' in lua
    assert 'wrk.headers["Content-Type"] = "application/json"' in lua


def test_startup_reuses_the_hello_scenarios_fresh_starts() -> None:
    from benchmarks.scenarios import startup

    ctx = Context(Settings(peers=("ray",), startup_rounds=1), LoadGenerator("python"))
    ctx.record_startup("serval", {"url": "u", "startup_s": 0.9})
    ctx.record_startup("Ray Serve", {"url": "u", "startup_s": 8.5})
    cells = startup.run(ctx)  # nothing left to start: no process runs
    assert [(c.system, c.startup_s, c.compare_on) for c in cells] == [
        ("serval", 0.9, "startup_s"),
        ("Ray Serve", 8.5, "startup_s"),
    ]
    assert "from the hello scenario" in cells[0].note


def test_mlserver_as_pip_installs_it_gets_h11_and_the_check_tells_the_parsers_apart(
    tmp_path: Path,
) -> None:
    """The oip scenario's pip-install MLServer: httptools, though installed, does not
    import on the path the shim gives, and /proc/PID/maps shows which parser a process
    really loaded (the child refuses to report ready otherwise)."""

    probe = (
        "import sys\ntry:\n    import httptools\nexcept ImportError:\n    pass\nsys.stdin.read()"
    )
    plain = subprocess.Popen([sys.executable, "-c", probe], stdin=subprocess.PIPE)
    hidden = subprocess.Popen(
        [sys.executable, "-c", probe],
        stdin=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": hide_httptools(str(tmp_path))},
    )
    try:
        deadline = time.monotonic() + 30
        while not uses_httptools(plain.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert uses_httptools(plain.pid)
        assert not uses_httptools(hidden.pid)
    finally:
        for proc in (plain, hidden):
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(timeout=10)


def test_mlserver_batching_is_a_labelled_tuned_row() -> None:
    from benchmarks.scenarios import oip
    from benchmarks.systems.mlserver_apps import BATCHING, model_settings

    assert "max_batch_size" not in model_settings("/m.joblib")  # MLServer's default: off
    tuned = model_settings("/m.joblib", batching=True)
    assert tuned["max_batch_size"] == BATCHING["max_batch_size"] > 1
    assert oip.PARSERS[oip.MLSERVER_BATCHING] == "httptools"
    assert set(oip.TARGETS) == set(oip.CONCURRENCIES)
