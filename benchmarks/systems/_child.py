"""The child side of the orchestrator's protocol: one tagged JSON line on stdout.

A server prints ``SERVAL_BENCH {"kind": "ready", "url": ..., "startup_s": ...}`` once
its first request succeeded, then serves until its stdin closes; a measurement prints
``SERVAL_BENCH {"kind": "result", ...}`` and exits. Anything else on stdout (Ray's
banners) is ignored by the parent.

Example (in a system's module)::

    started = time.perf_counter()
    url = start_my_server(port)
    report_ready(url, started)
    wait_for_stdin_eof()
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from benchmarks._harness.stats import ErrorCounts, Measurement, percentiles
from benchmarks.systems._handlers import BODY

TAG = "SERVAL_BENCH"


def emit(kind: str, **fields: Any) -> None:
    print(f"{TAG} {json.dumps({'kind': kind, **fields})}", flush=True)


def first_response_s(
    url: str, started: float, timeout_s: float = 180.0, body: bytes = BODY
) -> float:
    """Seconds from ``started`` until ``url`` answers a POST of ``body`` with 200."""
    parts = urlsplit(url)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=5)
            try:
                conn.request("POST", parts.path or "/", body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    return time.perf_counter() - started
            finally:
                conn.close()
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer 200 within {timeout_s:.0f}s")
        time.sleep(0.02)


def report_ready(url: str, started: float, body: bytes = BODY, **extra: Any) -> None:
    """The ready message once ``url`` answered a POST of ``body``; ``extra`` fields ride
    along (other URLs of the same server, a version)."""
    startup_s = round(first_response_s(url, started, body=body), 4)
    emit("ready", url=url, startup_s=startup_s, **extra)


def wait_for_stdin_eof() -> None:
    """Serve until the parent closes our stdin (or dies)."""
    sys.stdin.read()


async def drive(
    call: Callable[[], Awaitable[object]], concurrency: int, duration_s: float, warmup_s: float
) -> Measurement:
    """``concurrency`` closed-loop asyncio callers of ``call``: warm up, then measure.

    A call that raises counts as an error (kind ``status``, as a 5xx would over HTTP).
    """
    latencies: list[float] = []
    failures = 0
    start = time.perf_counter()
    measure_from = start + warmup_s
    until = measure_from + duration_s

    async def caller() -> None:
        nonlocal failures
        while (began := time.perf_counter()) < until:
            try:
                await call()
                ok = True
            except Exception:
                ok = False
            if began >= measure_from:
                if ok:
                    latencies.append(time.perf_counter() - began)
                else:
                    failures += 1

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    p50, p90, p99 = percentiles(latencies, [50, 90, 99]) if latencies else (0.0, 0.0, 0.0)
    return Measurement(
        requests=len(latencies),
        duration_s=duration_s,
        errors=ErrorCounts(status=failures),
        p50_ms=p50 * 1e3,
        p90_ms=p90 * 1e3,
        p99_ms=p99 * 1e3,
    )


def measurement_json(m: Measurement, **extra: Any) -> dict[str, Any]:
    return {
        "requests": m.requests,
        "duration_s": m.duration_s,
        "errors": m.errors.total,
        "rps": m.rps,
        "p50_ms": m.p50_ms,
        "p99_ms": m.p99_ms,
        **extra,
    }


def concurrencies(text: str) -> list[int]:
    """``"1,32"`` -> ``[1, 32]``."""
    return [int(x) for x in text.split(",") if x]


def add_handles_args(p: argparse.ArgumentParser) -> None:
    """The ``handles`` command's options, the same for every system."""
    p.add_argument("--concurrency", type=concurrencies, required=True, help="e.g. 1,32")
    p.add_argument("--duration", type=float, required=True, help="seconds per point")
    p.add_argument("--warmup", type=float, default=0.5, help="seconds, not measured")


async def drive_points(
    call: Callable[[], Awaitable[object]],
    points: list[int],
    duration_s: float,
    warmup_s: float,
) -> list[dict[str, Any]]:
    """``drive`` at each concurrency in turn; the points as JSON."""
    out = []
    for conns in points:
        m = await drive(call, conns, duration_s, warmup_s)
        out.append(measurement_json(m, concurrency=conns))
    return out
