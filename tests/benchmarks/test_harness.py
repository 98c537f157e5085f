"""The benchmark harness's logic, without servers: statistics, wrk parsing, tables, files."""

from __future__ import annotations

import asyncio
import io
import json
import math
import re
from pathlib import Path

import pytest
from rich.console import Console

from benchmarks import http_overhead
from benchmarks._harness import pyload, wrk
from benchmarks._harness.loadgen import LoadGenerator
from benchmarks._harness.results import (
    SCHEMA_VERSION,
    comparisons_table,
    cpu_model,
    load_results,
    result_path,
    results_table,
    save_results,
)
from benchmarks._harness.stats import (
    ErrorCounts,
    Measurement,
    Result,
    compare,
    format_delta_ms,
    format_percent,
    format_ratio,
    median_results,
    percentile,
    percentiles,
)

# -- percentiles ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "expected"),
    [(0, 1.0), (10, 1.0), (11, 2.0), (50, 5.0), (90, 9.0), (99, 10.0), (100, 10.0)],
)
def test_percentile_is_nearest_rank(p: float, expected: float) -> None:
    samples = [7.0, 3.0, 10.0, 1.0, 5.0, 2.0, 9.0, 4.0, 8.0, 6.0]  # 1..10, shuffled
    assert percentile(samples, p) == expected


def test_percentile_returns_an_observed_sample() -> None:
    assert percentile([1.0, 2.0], 50) == 1.0  # linear interpolation would say 1.5
    assert percentile([42.0], 99) == 42.0


def test_percentiles_match_percentile() -> None:
    samples = [float(x) for x in range(1000, 0, -1)]
    assert percentiles(samples, [50, 90, 99]) == [500.0, 900.0, 990.0]


@pytest.mark.parametrize("p", [-1, 100.5])
def test_percentile_rejects_p_outside_0_100(p: float) -> None:
    with pytest.raises(ValueError, match=r"outside 0\.\.100"):
        percentile([1.0], p)


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 50)


# -- measurements and rows -----------------------------------------------------------------


def test_error_counts_add_and_total() -> None:
    a = ErrorCounts(connect=1, read=2)
    b = ErrorCounts(read=1, status=3, timeout=4)
    assert a + b == ErrorCounts(connect=1, read=3, write=0, status=3, timeout=4)
    assert (a + b).total == 11


def test_result_from_measurement() -> None:
    m = Measurement(1000, 2.0, ErrorCounts(status=2), 0.13812, 0.2, 1.23456)
    r = Result.from_measurement(m, system="s", scenario="x", concurrency=4)
    assert r == Result("s", "x", 4, 1000, 2, 500.0, 0.1381, 1.2346)


def test_measurement_with_no_duration_has_no_rate() -> None:
    assert Measurement(0, 0.0, ErrorCounts(), 0, 0, 0).rps == 0.0


# -- wrk -----------------------------------------------------------------------------------

WRK_TEXT = """\
Running 2s test @ http://127.0.0.1:18123/
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   262.21us  637.82us   7.85ms   95.41%
    Req/Sec    27.36k     4.95k   31.01k    85.00%
  Latency Distribution
     50%  127.00us
     75%  133.00us
     90%  210.00us
     99%    3.73ms
  54424 requests in 2.00s, 8.51MB read
Requests/sec:  27148.92
Transfer/sec:      4.25MB
"""

WRK_REPORT = (
    'SERVAL_WRK_REPORT {"requests": 54424, "duration_us": 2004647, "connect": 0, "read": 0, '
    '"write": 0, "status": 0, "timeout": 0, "p50_us": 127, "p90_us": 210, "p99_us": 3735}\n'
)

WRK_TEXT_WITH_ERRORS = """\
Running 1m test @ http://127.0.0.1:8000/
  2 threads and 32 connections
  Latency Distribution
     50%    1.50ms
     75%    2.00ms
     90%  800.00ms
     99%    1.20s
  120000 requests in 1.00m, 20.00MB read
  Socket errors: connect 1, read 12, write 2, timeout 3
  Non-2xx or 3xx responses: 5
Requests/sec:   2000.00
Transfer/sec:    341.33KB
"""


def test_wrk_report_line_wins_over_the_text() -> None:
    m = wrk.parse_output(WRK_TEXT + WRK_REPORT)
    assert m == Measurement(54424, 2.004647, ErrorCounts(), 0.127, 0.21, 3.735)
    assert m.rps == pytest.approx(27148.9, rel=1e-4)


def test_wrk_text_without_report_line() -> None:
    m = wrk.parse_output(WRK_TEXT)
    assert (m.requests, m.duration_s, m.errors.total) == (54424, 2.0, 0)
    assert (m.p50_ms, m.p90_ms, m.p99_ms) == pytest.approx((0.127, 0.21, 3.73))


def test_wrk_text_errors_and_units() -> None:
    m = wrk.parse_output(WRK_TEXT_WITH_ERRORS)
    assert m.errors == ErrorCounts(connect=1, read=12, write=2, status=5, timeout=3)
    assert m.duration_s == 60.0
    assert (m.p50_ms, m.p90_ms, m.p99_ms) == pytest.approx((1.5, 800.0, 1200.0))


def test_wrk_report_line_counts_errors() -> None:
    line = WRK_REPORT.replace('"read": 0', '"read": 7').replace('"status": 0', '"status": 2')
    assert wrk.parse_output(line).errors == ErrorCounts(read=7, status=2)


def test_wrk_output_without_summary_is_rejected() -> None:
    with pytest.raises(ValueError, match="not wrk output"):
        wrk.parse_output("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_wrk_output_without_latency_distribution_is_rejected() -> None:
    text = "\n".join(line for line in WRK_TEXT.splitlines() if "%  " not in line)
    with pytest.raises(ValueError, match="--latency"):
        wrk.parse_output(text)


def test_wrk_command_rounds_duration_up_and_caps_threads() -> None:
    argv = wrk.command("http://h:1/", 1, 0.3, "/x.lua", threads=4, timeout_s=2.5)
    assert argv[:6] == ["wrk", "-t1", "-c1", "-d1s", "--timeout=3s", "--latency"]
    assert argv[6:] == ["-s", "/x.lua", "http://h:1/"]
    assert "-d5s" in wrk.command("http://h:1/", 32, 5, "/x.lua")


def test_wrk_lua_prints_the_tag_the_parser_reads() -> None:
    assert wrk.REPORT_TAG in wrk.REPORT_LUA
    for key in ("p50_us", "p90_us", "p99_us", "connect", "timeout"):
        assert f'"{key}"' in wrk.REPORT_LUA


def test_unknown_load_generator_is_rejected() -> None:
    with pytest.raises(ValueError, match="load generator 'ab'"):
        LoadGenerator.pick("ab")


def test_wrk_has_no_request_count_mode() -> None:
    with pytest.raises(ValueError, match="duration only"):
        LoadGenerator("wrk").measure("http://127.0.0.1:1/", 1, 1.0, requests=10)


# -- pyload --------------------------------------------------------------------------------


def test_parse_head() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nContent-Type: text/plain"
    assert pyload.parse_head(head) == (200, 12, False, True)
    head = b"HTTP/1.1 503 Busy\r\ntransfer-encoding: chunked\r\nconnection: close"
    assert pyload.parse_head(head) == (503, None, True, False)
    assert pyload.parse_head(b"HTTP/1.0 200 OK\r\ncontent-length: 0")[3] is False
    with pytest.raises(pyload.ResponseError):
        pyload.parse_head(b"SSH-2.0-OpenSSH")


async def _read(data: bytes) -> tuple[tuple[int, bool], bytes]:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    answer = await pyload.read_response(reader)
    return answer, await reader.read()


async def test_read_response_content_length_leaves_the_next_response() -> None:
    nxt = b"HTTP/1.1 200 OK\r\n\r\n"
    data = b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\nHello world!" + nxt
    assert await _read(data) == ((200, True), nxt)


async def test_read_response_chunked() -> None:
    head = b"HTTP/1.1 404 NF\r\nTransfer-Encoding: chunked\r\n\r\n"
    data = head + b"5\r\nHello\r\n1;x=y\r\n!\r\n0\r\n\r\n"
    assert await _read(data) == ((404, True), b"")


async def test_read_response_until_close() -> None:
    assert await _read(b"HTTP/1.1 200 OK\r\n\r\nbody, then EOF") == ((200, False), b"")


def test_split_and_merge() -> None:
    assert pyload.split(5, 2) == [3, 2]
    assert pyload.split(1, 3) == [1, 0, 0]
    a = pyload.WorkerReport([0.001, 0.002], ErrorCounts(read=1), 1.0)
    b = pyload.WorkerReport([0.003, 0.004], ErrorCounts(status=1), 1.1)
    m = pyload.merge([a, b])
    assert (m.requests, m.duration_s, m.errors.total) == (4, 1.1, 2)
    assert (m.p50_ms, m.p99_ms) == pytest.approx((2.0, 4.0))
    assert pyload.merge([pyload.WorkerReport([], ErrorCounts(connect=3), 1.0)]).requests == 0


def test_build_request() -> None:
    assert pyload.build_request("h", 8, "/a?b=1") == b"GET /a?b=1 HTTP/1.1\r\nHost: h:8\r\n\r\n"


# -- comparisons and tables ----------------------------------------------------------------

BARE = Result("bare", "hello", 32, 173000, 0, 34600.0, 0.9, 2.0)
ROWS = [
    Result("bare", "hello", 1, 34000, 0, 6800.0, 0.138, 0.3),
    BARE,
    Result("serval", "hello", 1, 16000, 0, 3200.0, 0.292, 0.6),
    Result("serval", "hello", 32, 83000, 0, 16608.0, 1.8, 5.0),
    Result("serval", "other", 32, 1, 0, 1.0, 1.0, 1.0),  # no baseline row: left out
]


def test_compare_against_the_baseline_row_of_the_same_point() -> None:
    c1, c32 = compare(ROWS, "bare")
    assert (c1.system, c1.baseline, c1.concurrency) == ("serval", "bare", 1)
    assert c1.p50_delta_ms == pytest.approx(0.154)
    assert c1.p50_ratio == pytest.approx(0.292 / 0.138)
    assert c32.rps_ratio == pytest.approx(0.48)
    assert c32.p99_ratio == pytest.approx(2.5)


def test_median_results_fold_rounds_per_point() -> None:
    def row(system: str, conns: int, rps: float, p50: float, errors: int = 0) -> Result:
        return Result(system, "h", conns, 100, errors, rps, p50, p50 * 2)

    rounds = [
        [row("a", 1, 10.0, 0.3), row("b", 1, 5.0, 0.9)],
        [row("a", 1, 30.0, 0.1, errors=1), row("b", 1, 7.0, 0.5)],
        [row("a", 1, 20.0, 0.2), row("b", 1, 6.0, 0.7)],
    ]
    a, b = median_results(rounds)
    assert a == Result("a", "h", 1, 300, 1, 20.0, 0.2, 0.4)
    assert (b.system, b.rps, b.p50_ms) == ("b", 6.0, 0.7)
    assert median_results([rounds[0], rounds[1]])[0].rps == 30.0  # upper median: measured


def test_compare_against_a_zero_baseline_is_nan() -> None:
    zero = Result("bare", "hello", 1, 0, 5, 0.0, 0.0, 0.0)
    (c,) = compare([zero, ROWS[2]], "bare")
    assert math.isnan(c.rps_ratio)
    assert format_ratio(c.p50_ratio) == "n/a"


def test_formatting() -> None:
    assert format_percent(0.4812) == "48%"
    assert format_ratio(2.1234) == "2.12x"
    assert format_delta_ms(0.154) == "+0.154 ms"
    assert format_delta_ms(-0.02) == "-0.020 ms"
    assert format_percent(math.nan) == "n/a"


def _render(table: object) -> str:
    out = io.StringIO()
    Console(file=out, width=200).print(table)
    return out.getvalue()


def test_ratio_table() -> None:
    text = _render(comparisons_table(compare(ROWS, "bare")))
    row32 = next(line for line in text.splitlines() if " 32 " in line)
    assert re.search(r"serval\s.*bare\s.*32\s.*48%\s.*\+0\.900 ms\s.*2\.00x\s.*2\.50x", row32)
    assert "+0.154 ms" in text


def test_results_table_shows_scenario_only_when_rows_differ() -> None:
    one = _render(results_table(ROWS[:4], title="T"))
    assert "T (hello)" in one and "scenario" not in one
    assert "34,600" in one and "16,608" in one
    assert "scenario" in _render(results_table(ROWS))


# -- result files --------------------------------------------------------------------------


def test_result_file_round_trip(tmp_path: Path) -> None:
    path = save_results(
        ROWS,
        benchmark="demo",
        settings={"duration_s": 5.0},
        extra={"comparisons": [{"rps_ratio": math.nan}]},
        path=tmp_path / "r.json",
    )
    doc, rows = load_results(path)
    assert rows == ROWS
    assert doc["schema_version"] == SCHEMA_VERSION
    assert doc["benchmark"] == "demo"
    assert doc["settings"] == {"duration_s": 5.0}
    assert doc["comparisons"] == [{"rps_ratio": None}]  # strict JSON: no NaN
    machine = doc["machine"]
    assert set(machine) >= {"cpu_model", "cpu_count", "python", "loadavg_1m", "versions"}
    assert set(machine["versions"]) >= {"serval", "uvicorn", "ray"}
    assert machine["versions"]["serval"]  # installed in the venv
    assert set(json.loads(path.read_text())["results"][0]) == {
        "system",
        "scenario",
        "concurrency",
        "requests",
        "errors",
        "rps",
        "p50_ms",
        "p99_ms",
    }
    assert not list(tmp_path.glob("*.tmp"))


def test_result_path_is_timestamped(tmp_path: Path) -> None:
    path = result_path("http_overhead", tmp_path)
    assert path.parent == tmp_path
    assert re.fullmatch(r"http_overhead-\d{8}T\d{6}Z\.json", path.name)


def test_load_rejects_other_schema_versions(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"schema_version": 0, "results": []}))
    with pytest.raises(ValueError, match="schema_version"):
        load_results(path)


def test_cpu_model(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\n")
    assert cpu_model(str(info)) == "Intel(R) Xeon(R) Processor"
    assert cpu_model(str(tmp_path / "missing"))  # falls back, never empty


# -- http_overhead's judging ---------------------------------------------------------------


def test_verdicts_against_the_targets() -> None:
    rows = [
        Result(http_overhead.BARE, "h", 1, 1, 0, 6800.0, 0.138, 0.3),
        Result(http_overhead.BARE, "h", 32, 1, 0, 34600.0, 0.9, 2.0),
        Result(http_overhead.SERVAL, "h", 1, 1, 0, 3200.0, 0.292, 0.6),
        Result(http_overhead.SERVAL, "h", 32, 1, 0, 10000.0, 3.0, 9.0),
        Result(http_overhead.SERVAL_100, "h", 1, 1, 0, 3000.0, 0.5, 0.6),
        Result(http_overhead.SERVAL_100, "h", 32, 1, 0, 16600.0, 1.8, 5.0),
    ]
    got = {
        (v.system, "req/s" in v.target): v.passed
        for v in http_overhead.verdicts(compare(rows, http_overhead.BARE))
    }
    assert got == {
        (http_overhead.SERVAL, False): True,  # +0.154 ms <= 0.3 ms
        (http_overhead.SERVAL, True): False,  # 29% < 35%
        (http_overhead.SERVAL_100, False): False,  # +0.362 ms
        (http_overhead.SERVAL_100, True): True,  # 48%
    }


def test_ceiling_is_bare_uvicorn_at_the_most_connections() -> None:
    rows = [
        Result(http_overhead.BARE, "h", 1, 1, 0, 40000.0, 0.1, 0.3),
        Result(http_overhead.BARE, "h", 32, 1, 0, 34600.0, 0.9, 2.0),
    ]
    line = http_overhead.ceiling_line(rows, LoadGenerator("python", processes=2))
    assert ">= 34,600 req/s" in line and "32 connections" in line


def test_unknown_runtime_is_a_clear_error() -> None:
    with pytest.raises(SystemExit, match="--runtime nope: not available yet"):
        http_overhead.check_runtime("nope")
    http_overhead.check_runtime("local")
