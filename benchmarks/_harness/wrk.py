"""Driving an endpoint with ``wrk`` and reading what it reports.

wrk's own text (``--latency``) rounds percentiles to two decimals of a unit that changes
(``130.00us``, ``4.05ms``), so every run also loads :data:`REPORT_LUA`, whose ``done()``
prints one machine-readable line: percentiles 50/90/99 in µs from
``latency:percentile(p)`` and ``summary.errors``. :func:`parse_output` reads that line,
and falls back to the text when it is missing (a wrk without Lua, or a saved log).

wrk takes durations in whole seconds, so durations are rounded up to at least 1 s. It
has no request-count mode: a Lua ``wrk.thread:stop()`` ends a thread early, but wrk
still waits out ``-d`` and reports it as the duration, so counted runs use ``pyload``.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import tempfile

from benchmarks._harness.stats import ErrorCounts, Measurement

REPORT_TAG = "SERVAL_WRK_REPORT"

REPORT_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, '
    .. '"status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d}\\n',
    "SERVAL_WRK_REPORT", summary.requests, summary.duration, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99)))
end
"""


def post_lua(body: bytes) -> str:
    """Lua that makes every request a POST of the JSON ``body``."""
    text = body.decode()
    return (
        f'wrk.method = "POST"\nwrk.body = {_lua_string(text)}\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
    )


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def available() -> bool:
    return shutil.which("wrk") is not None


def version() -> str:
    proc = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    first = (proc.stdout or proc.stderr).strip().splitlines()
    return first[0].split(" Copyright")[0].strip() if first else "wrk"


def command(
    url: str,
    connections: int,
    duration_s: float,
    script_path: str,
    *,
    threads: int = 1,
    timeout_s: float = 10.0,
) -> list[str]:
    return [
        "wrk",
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{max(1, math.ceil(duration_s))}s",
        f"--timeout={max(1, math.ceil(timeout_s))}s",
        "--latency",
        "-s",
        script_path,
        url,
    ]


def run(
    url: str,
    connections: int,
    duration_s: float,
    *,
    threads: int = 1,
    timeout_s: float = 10.0,
    body: bytes | None = None,
) -> Measurement:
    """One wrk run of ``duration_s`` (rounded up to whole seconds); GETs, or POSTs of
    the JSON ``body``."""
    fd, path = tempfile.mkstemp(suffix=".lua", prefix="serval-wrk-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write((post_lua(body) if body is not None else "") + REPORT_LUA)
        argv = command(url, connections, duration_s, path, threads=threads, timeout_s=timeout_s)
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    finally:
        os.unlink(path)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout}")
    return parse_output(proc.stdout)


def parse_output(text: str) -> Measurement:
    """A Measurement from wrk's stdout: the report line if present, else the text."""
    for line in text.splitlines():
        if line.startswith(REPORT_TAG):
            return _from_report(json.loads(line[len(REPORT_TAG) :]))
    return _from_text(text)


def _from_report(r: dict[str, int]) -> Measurement:
    errors = ErrorCounts(r["connect"], r["read"], r["write"], r["status"], r["timeout"])
    return Measurement(
        requests=r["requests"],
        duration_s=r["duration_us"] / 1e6,
        errors=errors,
        p50_ms=r["p50_us"] / 1e3,
        p90_ms=r["p90_us"] / 1e3,
        p99_ms=r["p99_us"] / 1e3,
    )


_TIME_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_SUMMARY = re.compile(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h),")
_PERCENTILE = re.compile(r"^\s*(50|90|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.M)
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


def _from_text(text: str) -> Measurement:
    summary = _SUMMARY.search(text)
    if summary is None:
        raise ValueError(f"not wrk output (no 'N requests in T' line):\n{text}")
    pct = {int(p): float(v) * _TIME_MS[u] for p, v, u in _PERCENTILE.findall(text)}
    missing = {50, 90, 99} - set(pct)
    if missing:
        raise ValueError(f"wrk output lacks percentiles {sorted(missing)}: run it with --latency")
    sock = _SOCKET.search(text)
    connect, read, write, timeout = (int(g) for g in sock.groups()) if sock else (0, 0, 0, 0)
    non2xx = _NON_2XX.search(text)
    return Measurement(
        requests=int(summary.group(1)),
        duration_s=float(summary.group(2)) * _TIME_MS[summary.group(3)] / 1e3,
        errors=ErrorCounts(connect, read, write, int(non2xx.group(1)) if non2xx else 0, timeout),
        p50_ms=pct[50],
        p90_ms=pct[90],
        p99_ms=pct[99],
    )
