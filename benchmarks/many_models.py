"""Many models: serval against Ray Serve's multiplexing, and against Belady's bound.

1,000 generated tenant models (sizes from 16 KB to 4 MB; a load is a registry fetch
with ``--latency`` plus a real load of the pickled model), a Zipf(``--zipf``) trace of
tenant ids,
played by ``wrk`` (a Lua script sets the ``serve_multiplexed_model_id`` header of each
request from the trace, in order; ``--connections`` keep-alive connections, ``--duration``
seconds). Both systems: 2 replicas, the same loader and handler
(benchmarks/_mm_common.py), the same hot capacity (``--capacity`` models per replica).
serval runs exactly the Ray Serve user's code (``@serval.multiplexed(
max_num_models_per_replica=N)``, nothing else: ``serval``); ``serval-tuned`` adds
``max_concurrent_loads=32`` and is labelled so. Prints req/s, p50, p99, errors and
loads, next to the Belady lower bound on loads over the requests actually played (the
optimal offline policy for ONE cache of the fleet's total capacity) and the popularity
oracle (the online limit), and the **ideal bound** on req/s: Belady's loads at full
client concurrency — each of its loads costs the fetch latency and they overlap across
all clients, hits run at the measured all-hot rate::

    ideal req/s = 1 / (belady_loads * latency / (connections * requests) + 1 / hot_rps)

and each system's share of it.

Targets (issue "Many models II"): serval's loads ≤ 1.3x Belady and ≤ 1.05x the
popularity oracle; ≥ 10x Ray Serve's req/s; p99 ≤ 1/5 of Ray Serve's.

Run: python benchmarks/many_models.py [--quick] [--systems serval,serval-tuned,ray]
     [--tenants 10000 --connections 32 --duration 8]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import heapq
import os
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchmarks._harness import wrk
from benchmarks._harness.procs import free_port, wait_for_port
from benchmarks._harness.stats import Measurement, Result
from serval.models.eviction import TraceRequest
from serval.models.eviction.oracle import Phase, popularity_oracle

ROOT = Path(__file__).resolve().parent.parent
PEERS_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
ORACLE = "oracle"  # the popularity oracle's loads, in the loads table
REGISTRY = Path(tempfile.gettempdir()) / "serval-bench-registry"


@dataclass(frozen=True)
class Settings:
    tenants: int = 1000
    requests: int = 200_000  # trace length (wrk plays a prefix of it for duration_s)
    concurrency: int = 16
    capacity: int = 32  # models per replica (2 replicas)
    latency_s: float = 0.02
    zipf: float = 1.1
    seed: int = 1
    duration_s: float = 8.0


SYSTEMS = ("serval", "serval-tuned", "ray")
LABELS = {"serval": "serval (defaults)", "serval-tuned": "serval (max_concurrent_loads=32)"}


@dataclass(frozen=True)
class Played:
    """One system's run: what wrk measured and what the played prefix allowed."""

    result: Result
    loads: int
    belady: int
    oracle: int
    ideal_rps: float

    @property
    def share(self) -> float:
        return self.result.rps / self.ideal_rps if self.ideal_rps else 0.0


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


TRACE_LUA = """
local ids = {}
for line in io.lines(%s) do ids[#ids + 1] = line end
local i = 0
request = function()
  local id = ids[(i %% #ids) + 1]
  i = i + 1
  return wrk.format("GET", "/", {["serve_multiplexed_model_id"] = id})
end
"""


def replay_wrk(port: int, trace: Sequence[str], concurrency: int, duration_s: float) -> Measurement:
    """wrk plays ``trace`` in order (one thread, so one counter for every connection)
    over ``concurrency`` connections for ``duration_s``."""
    if not wrk.available():
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="serval-mm-wrk-") as tmp:
        ids = os.path.join(tmp, "trace.txt")
        with open(ids, "w") as f:
            f.write("\n".join(trace) + "\n")
        script = os.path.join(tmp, "trace.lua")
        with open(script, "w") as f:
            f.write(TRACE_LUA % wrk._lua_string(ids) + wrk.REPORT_LUA)
        argv = wrk.command(
            f"http://127.0.0.1:{port}/", concurrency, duration_s, script, timeout_s=30
        )
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    return wrk.parse_output(proc.stdout)


def hot_rps(port: int, tenant: str, concurrency: int) -> float:
    """req/s when every request hits a model in memory (the ideal's cost of a hit)."""
    m = replay_wrk(port, [tenant], concurrency, 1.0)
    return m.requests / m.duration_s


def ensure_registry(tenants: int) -> str:
    os.environ.setdefault("SERVAL_LOG_LEVEL", "WARNING")
    from serval.apps._tenants import generate

    for _ in generate(str(REGISTRY), tenants):
        pass
    return str(REGISTRY)


def run_serval(
    s: Settings, trace: list[str], registry: str, loads_file: str, *, tuned: bool = False
) -> tuple[Measurement, float]:
    import serval
    from benchmarks._mm_serval import make_app

    os.environ.setdefault("SERVAL_HOME", tempfile.mkdtemp(prefix="svmm", dir="/tmp"))
    port = free_port()
    serval.start(http_options={"port": port})
    try:
        app = make_app(registry, s.capacity, s.latency_s, loads_file, tuned=tuned)
        serval.run(app, name="mm", route_prefix="/")
        m = replay_wrk(port, trace, s.concurrency, s.duration_s)
        return m, hot_rps(port, trace[0], s.concurrency)
    finally:
        serval.shutdown()


def run_ray(
    s: Settings, trace: list[str], registry: str, loads_file: str
) -> tuple[Measurement, float]:
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
        m = replay_wrk(port, trace, s.concurrency, s.duration_s)
        return m, hot_rps(port, trace[0], s.concurrency)
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_scenario(quick: bool, systems: Sequence[str] = SYSTEMS) -> list[Result]:
    """The measurements as harness Results."""
    s = Settings(duration_s=3.0 if quick else Settings.duration_s)
    return [p.result for p in measure(s, systems).values()]


def measure(s: Settings, systems: Sequence[str]) -> dict[str, Played]:
    """Each system on the same trace; bounds over the prefix each one played."""
    registry = ensure_registry(s.tenants)
    trace, popularity = zipf_draw(s.requests, s.tenants, s.zipf, s.seed)
    out: dict[str, Played] = {}
    for system in systems:
        loads_file = tempfile.mktemp(prefix=f"loads-{system}-", dir="/tmp")
        if system == "ray":
            m, hot = run_ray(s, trace, registry, loads_file)
        else:
            m, hot = run_serval(s, trace, registry, loads_file, tuned=system == "serval-tuned")
        try:
            with open(loads_file) as f:
                loads = sum(1 for _ in f) - 1  # the all-hot run loaded trace[0] at most once
        finally:
            if os.path.exists(loads_file):
                os.unlink(loads_file)
        played = [trace[i % len(trace)] for i in range(m.requests)]
        belady = belady_loads(played, 2 * s.capacity)
        per_request = belady * s.latency_s / (s.concurrency * max(1, m.requests))
        out[system] = Played(
            Result.from_measurement(
                m, system=system, scenario="many_models", concurrency=s.concurrency
            ),
            max(0, loads),
            belady,
            oracle_loads(played, popularity, 2 * s.capacity),
            1.0 / (per_request + 1.0 / hot) if hot else 0.0,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--tenants", type=int, default=Settings.tenants)
    parser.add_argument("--connections", type=int, default=Settings.concurrency)
    parser.add_argument("--duration", type=float, default=None)
    parser.add_argument("--capacity", type=int, default=Settings.capacity)
    parser.add_argument("--latency", type=float, default=Settings.latency_s)
    args = parser.parse_args()
    s = Settings(
        tenants=args.tenants,
        concurrency=args.connections,
        capacity=args.capacity,
        latency_s=args.latency,
        duration_s=args.duration or (3.0 if args.quick else Settings.duration_s),
    )
    played = measure(s, args.systems.split(","))
    report(s, played)


def report(s: Settings, played: dict[str, Played]) -> None:
    print(
        f"{s.tenants} tenants, Zipf({s.zipf}), wrk {s.concurrency} connections x "
        f"{s.duration_s:.0f} s, 2 replicas x {s.capacity} models, fetch {s.latency_s * 1e3:.0f} ms"
    )
    print(
        f"{'system':<34}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'errors':>7}{'loads':>7}"
        f"{'Belady':>8}{'xBelady':>8}{'xOracle':>8}{'ideal':>8}{'share':>7}"
    )
    for system, p in played.items():
        r = p.result
        print(
            f"{LABELS.get(system, system):<34}{r.rps:>8.0f}{r.p50_ms:>8.1f}{r.p99_ms:>8.1f}"
            f"{r.errors:>7}{p.loads:>7}{p.belady:>8}{p.loads / max(1, p.belady):>7.2f}x"
            f"{p.loads / max(1, p.oracle):>7.2f}x{p.ideal_rps:>8.0f}{p.share:>6.0%}"
        )
    if "serval" in played:
        share = played["serval"].share
        print(f"target >= 70% of the ideal bound (defaults): {share:.0%}")
    if "serval" in played and "ray" in played:
        x = played["serval"].result.rps / played["ray"].result.rps
        p99 = played["serval"].result.p99_ms / played["ray"].result.p99_ms
        print(f"target >= 10x Ray Serve req/s: {x:.1f}x -> {'PASS' if x >= 10 else 'MISS'}")
        print(f"target p99 <= 1/5 of Ray Serve's: {p99:.2f} -> {'PASS' if p99 <= 0.2 else 'MISS'}")


if __name__ == "__main__":
    main()
