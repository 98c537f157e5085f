"""Many models: serval against Ray Serve's multiplexing, and against Belady's bound.

1,000 generated tenant models (sizes from 16 KB to 4 MB; a load is a registry fetch
with ``--latency`` plus a real joblib load), a Zipf(``--zipf``) trace of tenant ids,
replayed at fixed concurrency by closed-loop clients that send the model id in the
``serve_multiplexed_model_id`` header. Both systems: 2 replicas, the same loader and
handler (benchmarks/_mm_common.py), the same hot capacity (``--capacity`` models per
replica). Prints req/s, p50, p99, errors and total loads, next to the Belady lower
bound on loads: the optimal offline policy for ONE cache of the fleet's total capacity
(two caches of half the size can only load more), and the online limit: the popularity
oracle for that cache (it keeps the tenants of highest true probability, and loads the
others for each request).

Targets (issue "Many models II"): serval's loads ≤ 1.3x Belady and ≤ 1.05x the
popularity oracle; ≥ 10x Ray Serve's req/s; p99 ≤ 1/5 of Ray Serve's.

Run: python benchmarks/many_models.py [--quick] [--systems serval,ray]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import heapq
import os
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchmarks._harness.procs import free_port, wait_for_port
from benchmarks._harness.stats import ErrorCounts, Measurement, Result, percentile
from serval.models.eviction import TraceRequest
from serval.models.eviction.oracle import Phase, popularity_oracle

ROOT = Path(__file__).resolve().parent.parent
PEERS_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
ORACLE = "oracle"  # the popularity oracle's loads, in the loads table
REGISTRY = Path(tempfile.gettempdir()) / "serval-bench-registry"


@dataclass(frozen=True)
class Settings:
    tenants: int = 1000
    requests: int = 20_000
    concurrency: int = 16
    capacity: int = 32  # models per replica (2 replicas)
    latency_s: float = 0.02
    zipf: float = 1.1
    seed: int = 1


def zipf_trace(n: int, tenants: int, s: float, seed: int) -> list[str]:
    """``n`` tenant ids drawn with P(rank i) ∝ 1/i^s; ranks shuffled over tenants."""
    return zipf_draw(n, tenants, s, seed)[0]


def zipf_draw(n: int, tenants: int, s: float, seed: int) -> tuple[list[str], dict[str, float]]:
    """:func:`zipf_trace` and the probability of each tenant it was drawn with."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, tenants + 1) ** s
    ranks = rng.choice(tenants, size=n, p=weights / weights.sum())
    names = rng.permutation(tenants) + 1
    popularity = {f"tenant{names[r]}": float(w) for r, w in enumerate(weights / weights.sum())}
    return [f"tenant{names[r]}" for r in ranks], popularity


def oracle_loads(trace: Sequence[str], popularity: dict[str, float], capacity: int) -> int:
    """Loads of the popularity oracle (``serval.models.eviction.oracle``) for one cache
    of ``capacity`` models: it keeps the likeliest tenants and loads the others for each
    of their requests. No online policy beats it in expectation on this trace."""
    trace_requests = [TraceRequest(k, 1) for k in trace]
    phase = Phase(0, popularity, dict.fromkeys(popularity, 1))
    return popularity_oracle(trace_requests, [phase], capacity).misses


def belady_loads(trace: Sequence[str], capacity: int) -> int:
    """Misses of the optimal offline policy (evict the item used farthest in future)."""
    nxt: list[int] = [0] * len(trace)
    last: dict[str, int] = {}
    for i in range(len(trace) - 1, -1, -1):
        nxt[i] = last.get(trace[i], len(trace) + i)
        last[trace[i]] = i
    cache: dict[str, int] = {}
    heap: list[tuple[int, str]] = []
    loads = 0
    for i, key in enumerate(trace):
        if key not in cache:
            loads += 1
            if len(cache) >= capacity:
                while True:
                    neg, victim = heapq.heappop(heap)
                    if cache.get(victim) == -neg:
                        del cache[victim]
                        break
        cache[key] = nxt[i]
        heapq.heappush(heap, (-nxt[i], key))
    return loads


async def replay(
    port: int, trace: Sequence[str], concurrency: int
) -> tuple[Measurement, list[str]]:
    """Closed-loop clients over keep-alive connections; each takes the next trace item."""
    latencies: list[float] = []
    failures: list[str] = []
    position = 0

    async def client() -> None:
        nonlocal position
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while position < len(trace):
                tenant = trace[position]
                position += 1
                began = time.perf_counter()
                writer.write(
                    f"GET / HTTP/1.1\r\nHost: bench\r\nserve_multiplexed_model_id: "
                    f"{tenant}\r\n\r\n".encode()
                )
                status = await _read_response(reader)
                latencies.append((time.perf_counter() - began) * 1000)
                if status != 200:
                    failures.append(f"{tenant}: {status}")
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*[client() for _ in range(concurrency)])
    elapsed = time.perf_counter() - started
    m = Measurement(
        requests=len(latencies),
        duration_s=elapsed,
        errors=ErrorCounts(status=len(failures)),
        p50_ms=percentile(latencies, 50),
        p90_ms=percentile(latencies, 90),
        p99_ms=percentile(latencies, 99),
    )
    return m, failures


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {
        k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)
    }
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readline()).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


def ensure_registry(tenants: int) -> str:
    os.environ.setdefault("SERVAL_LOG_LEVEL", "WARNING")
    from serval.apps._tenants import generate

    for _ in generate(str(REGISTRY), tenants):
        pass
    return str(REGISTRY)


def run_serval(
    s: Settings, trace: list[str], registry: str, loads_file: str
) -> tuple[Measurement, list[str]]:
    import serval
    from benchmarks._mm_serval import make_app

    os.environ.setdefault("SERVAL_HOME", tempfile.mkdtemp(prefix="svmm", dir="/tmp"))
    port = free_port()
    serval.start(http_options={"port": port})
    try:
        serval.run(
            make_app(registry, s.capacity, s.latency_s, loads_file), name="mm", route_prefix="/"
        )
        return asyncio.run(replay(port, trace, s.concurrency))
    finally:
        serval.shutdown()


def run_ray(
    s: Settings, trace: list[str], registry: str, loads_file: str
) -> tuple[Measurement, list[str]]:
    if not PEERS_PYTHON.exists():
        raise RuntimeError("the peers' virtualenv is missing: run `make bench-env`")
    port = free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.Popen(
        [
            str(PEERS_PYTHON),
            str(ROOT / "benchmarks" / "peers" / "ray_many_models.py"),
            "--port",
            str(port),
            "--registry",
            registry,
            "--capacity",
            str(s.capacity),
            "--latency",
            str(s.latency_s),
            "--loads-file",
            loads_file,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        while (line := proc.stdout.readline()) and "READY" not in line:
            pass
        wait_for_port("127.0.0.1", port, timeout_s=60)
        return asyncio.run(replay(port, trace, s.concurrency))
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_scenario(quick: bool, systems: Sequence[str] = ("serval", "ray")) -> list[Result]:
    """The measurements as harness Results (loads go in the scenario name)."""
    s = Settings(requests=4000 if quick else Settings.requests)
    rows, _, _ = measure(s, systems)
    return rows


def measure(s: Settings, systems: Sequence[str]) -> tuple[list[Result], dict[str, int], int]:
    registry = ensure_registry(s.tenants)
    trace, popularity = zipf_draw(s.requests, s.tenants, s.zipf, s.seed)
    bound = belady_loads(trace, 2 * s.capacity)
    results: list[Result] = []
    loads: dict[str, int] = {ORACLE: oracle_loads(trace, popularity, 2 * s.capacity)}
    for system in systems:
        loads_file = tempfile.mktemp(prefix=f"loads-{system}-", dir="/tmp")
        m, failures = (run_serval if system == "serval" else run_ray)(
            s, trace, registry, loads_file
        )
        with open(loads_file) as f:
            loads[system] = sum(1 for _ in f)
        os.unlink(loads_file)
        if failures:
            print(f"{system}: {len(failures)} failed requests, e.g. {failures[:3]}")
        results.append(
            Result.from_measurement(
                m, system=system, scenario="many_models", concurrency=s.concurrency
            )
        )
    return results, loads, bound


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--systems", default="serval,ray")
    parser.add_argument("--requests", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=Settings.concurrency)
    parser.add_argument("--capacity", type=int, default=Settings.capacity)
    parser.add_argument("--latency", type=float, default=Settings.latency_s)
    args = parser.parse_args()
    s = Settings(
        requests=args.requests or (4000 if args.quick else Settings.requests),
        concurrency=args.concurrency,
        capacity=args.capacity,
        latency_s=args.latency,
    )
    results, loads, bound = measure(s, args.systems.split(","))
    print(
        f"{s.tenants} tenants, {s.requests} requests, Zipf({s.zipf}), {s.concurrency} "
        f"clients, 2 replicas x {s.capacity} models, fetch latency {s.latency_s * 1000:.0f} ms"
    )
    print(
        f"{'system':<10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'loads':>8}"
        f"{'vs Belady':>11}"
    )
    for r in results:
        print(
            f"{r.system:<10}{r.rps:>9.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}{r.errors:>8}"
            f"{loads[r.system]:>8}{loads[r.system] / bound:>10.2f}x"
        )
    print(f"{'Belady':<10}{'':>9}{'':>9}{'':>9}{'':>8}{bound:>8}{1:>10.2f}x")
    oracle = loads[ORACLE]
    print(f"{'oracle':<10}{'':>9}{'':>9}{'':>9}{'':>8}{oracle:>8}{oracle / bound:>10.2f}x")
    by = {r.system: r for r in results}
    if "serval" in by:
        ratio = loads["serval"] / bound
        print(f"target loads <= 1.3x Belady: {ratio:.2f}x -> {'PASS' if ratio <= 1.3 else 'MISS'}")
        x = loads["serval"] / oracle
        print(
            f"target loads <= 1.05x the popularity oracle: {x:.2f}x "
            f"(Belady {ratio:.2f}x) -> {'PASS' if x <= 1.05 else 'MISS'}"
        )
    if "serval" in by and "ray" in by:
        x = by["serval"].rps / by["ray"].rps
        p = by["serval"].p99_ms / by["ray"].p99_ms
        print(f"target >= 10x Ray Serve req/s: {x:.1f}x -> {'PASS' if x >= 10 else 'MISS'}")
        print(f"target p99 <= 1/5 of Ray Serve's: {p:.2f} -> {'PASS' if p <= 0.2 else 'MISS'}")


if __name__ == "__main__":
    main()
