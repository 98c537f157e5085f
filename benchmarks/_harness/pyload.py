"""The load generator used when ``wrk`` is not installed: asyncio, HTTP/1.1 keep-alive.

``processes`` worker processes each hold their share of the connections; every
connection sends the same pre-built request bytes, reads the response (Content-Length
or chunked), records its latency and sends the next. Workers open their connections,
meet at a barrier, run the warm-up (latencies dropped), then measure; the parent merges
their latencies and error counts into one Measurement.

It is a fallback: one Python process tops out near 10-20k req/s, so give it a core per
process. The benchmark prints the generator's ceiling so readers can tell.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import queue
import time
from dataclasses import dataclass, field
from typing import Any

from benchmarks._harness.stats import ErrorCounts, Measurement, percentiles


@dataclass(frozen=True)
class LoadPlan:
    """What one worker does; pickled into the worker process."""

    host: str
    port: int
    path: str
    connections: int
    warmup_s: float
    duration_s: float
    requests: int | None = None  # this worker's budget; None: run for duration_s
    timeout_s: float = 10.0
    body: bytes | None = None  # a JSON body to POST; None: GET


@dataclass
class WorkerReport:
    latencies_s: list[float] = field(default_factory=list)
    errors: ErrorCounts = field(default_factory=ErrorCounts)
    elapsed_s: float = 0.0


class ResponseError(Exception):
    """The server answered something that is not an HTTP/1.1 response."""


def build_request(host: str, port: int, path: str, body: bytes | None = None) -> bytes:
    """A GET, or with ``body`` a POST of that JSON body."""
    if body is None:
        return f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def parse_head(head: bytes) -> tuple[int, int | None, bool, bool]:
    """(status, content_length, chunked, keep_alive) of a response head."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ResponseError(f"bad status line {lines[0]!r}")
    length: int | None = None
    chunked = False
    keep_alive = parts[0] == "HTTP/1.1"
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding":
            chunked = "chunked" in value
        elif name == "connection":
            keep_alive = value == "keep-alive" or (keep_alive and value != "close")
    return int(parts[1]), length, chunked, keep_alive


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; returns (status, keep_alive)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status, length, chunked, keep_alive = parse_head(head[:-4])
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length is not None:
        await reader.readexactly(length)
    else:
        await reader.read()  # body runs until the server closes
        keep_alive = False
    return status, keep_alive


class _Connection:
    def __init__(self, plan: LoadPlan, request: bytes) -> None:
        self._plan = plan
        self._request = request
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def open(self) -> None:
        self._streams = await asyncio.open_connection(self._plan.host, self._plan.port)

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None

    async def roundtrip(self) -> tuple[int, str]:
        """One request; returns (status, "") or (0, error kind)."""
        try:
            if self._streams is None:
                await self.open()
        except OSError:
            return 0, "connect"
        assert self._streams is not None
        reader, writer = self._streams
        try:
            writer.write(self._request)
            await writer.drain()
        except OSError:
            self.close()
            return 0, "write"
        try:
            status, keep_alive = await asyncio.wait_for(read_response(reader), self._plan.timeout_s)
        except asyncio.TimeoutError:
            self.close()
            return 0, "timeout"
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ResponseError):
            self.close()
            return 0, "read"
        if not keep_alive:
            self.close()
        return status, ""


class _Recorder:
    """Latencies and errors of the measured phase, shared by one worker's connections."""

    def __init__(self, plan: LoadPlan, start: float) -> None:
        self.measure_from = start + plan.warmup_s
        self.until = self.measure_from + plan.duration_s
        self.budget = plan.requests
        self.latencies: list[float] = []
        self.errors: dict[str, int] = {}
        self.last_done = self.measure_from

    def more(self, now: float) -> bool:
        if self.budget is not None and now >= self.measure_from:
            return len(self.latencies) + sum(self.errors.values()) < self.budget
        return now < self.until

    def record(self, began: float, ended: float, status: int, error: str) -> None:
        if began < self.measure_from:
            return
        if error:
            self.errors[error] = self.errors.get(error, 0) + 1
            return
        if status >= 400:
            self.errors["status"] = self.errors.get("status", 0) + 1
        self.latencies.append(ended - began)
        self.last_done = max(self.last_done, ended)


async def _drive(conn: _Connection, rec: _Recorder) -> None:
    while rec.more(began := time.perf_counter()):
        status, error = await conn.roundtrip()
        rec.record(began, time.perf_counter(), status, error)
    conn.close()


async def _run_worker(plan: LoadPlan, barrier: Any) -> WorkerReport:
    request = build_request(plan.host, plan.port, plan.path, plan.body)
    conns = [_Connection(plan, request) for _ in range(plan.connections)]
    for conn in conns:
        try:
            await conn.open()
        except OSError:
            pass  # counted as a connect error on its first request
    barrier.wait(timeout=60)  # blocking on purpose: nothing else runs in this loop yet
    rec = _Recorder(plan, time.perf_counter())
    await asyncio.gather(*(_drive(c, rec) for c in conns))
    elapsed = plan.duration_s if plan.requests is None else rec.last_done - rec.measure_from
    return WorkerReport(rec.latencies, ErrorCounts(**rec.errors), elapsed)


def _worker_main(plan: LoadPlan, barrier: Any, results: Any) -> None:
    try:
        import uvloop

        report = uvloop.run(_run_worker(plan, barrier))
    except ImportError:
        report = asyncio.run(_run_worker(plan, barrier))
    results.put(report)


def split(total: int, parts: int) -> list[int]:
    """``total`` as ``parts`` near-equal non-negative shares: split(5, 2) -> [3, 2]."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def run(
    host: str,
    port: int,
    path: str,
    connections: int,
    duration_s: float,
    *,
    warmup_s: float = 0.0,
    requests: int | None = None,
    processes: int = 1,
    timeout_s: float = 10.0,
    body: bytes | None = None,
) -> Measurement:
    """Drive ``http://host:port/path`` with ``connections`` keep-alive connections
    (GETs, or POSTs of the JSON ``body``)."""
    processes = max(1, min(processes, connections))
    budgets = split(requests, processes) if requests is not None else [None] * processes
    plans = [
        LoadPlan(host, port, path, n, warmup_s, duration_s, budget, timeout_s, body)
        for n, budget in zip(split(connections, processes), budgets, strict=True)
    ]
    ctx = mp.get_context("spawn")  # the parent may run threads (a serval driver does)
    barrier = ctx.Barrier(processes)
    results = ctx.Queue()
    workers = [ctx.Process(target=_worker_main, args=(p, barrier, results)) for p in plans]
    for w in workers:
        w.start()
    limit = 60 + warmup_s + duration_s + (timeout_s if requests is None else 600)
    try:
        reports = [_get(results, workers, limit) for _ in workers]
    finally:
        for w in workers:
            w.join(timeout=5)
            if w.is_alive():
                w.kill()
                w.join()
            w.close()
        results.close()
        results.join_thread()
    return merge(reports)


def _get(results: Any, workers: list[Any], limit_s: float) -> WorkerReport:
    deadline = time.monotonic() + limit_s
    while True:
        try:
            report: WorkerReport = results.get(timeout=0.5)
            return report
        except queue.Empty:
            if time.monotonic() > deadline or any(w.exitcode not in (None, 0) for w in workers):
                codes = [w.exitcode for w in workers]
                raise RuntimeError(f"load generator workers failed (exit codes {codes})") from None


def merge(reports: list[WorkerReport]) -> Measurement:
    """One Measurement from the workers' reports (they ran side by side)."""
    latencies = [x for r in reports for x in r.latencies_s]
    errors = sum((r.errors for r in reports), ErrorCounts())
    if not latencies:
        return Measurement(0, max(r.elapsed_s for r in reports), errors, 0.0, 0.0, 0.0)
    p50, p90, p99 = percentiles(latencies, [50, 90, 99])
    return Measurement(
        requests=len(latencies),
        duration_s=max(r.elapsed_s for r in reports),
        errors=errors,
        p50_ms=p50 * 1e3,
        p90_ms=p90 * 1e3,
        p99_ms=p99 * 1e3,
    )
