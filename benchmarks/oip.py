"""OIP v2 against ``POST /score`` on the same many-models app, same run, same trace.

1,000 generated tenant models (``serval.apps._tenants``), a Zipf(``--zipf``) trace of
tenant ids, 3 rows of 4 features per request. Four modes take turns on one serval
instance (interleaved rounds, so they share the machine's state and the caches):

=============  ===========================================================  =========
mode           request                                                      client
=============  ===========================================================  =========
score          ``POST /score {"tenant", "data"}``                           wrk + Lua
oip-json       ``POST /v2/models/{t}/infer``, JSON tensors                  wrk + Lua
oip-binary     the same, input and output in the binary tensor extension    wrk + Lua
oip-grpc       ``ModelInfer`` on the proxy's gRPC port (raw contents)       grpc.aio
=============  ===========================================================  =========

The Lua cycles through the trace (one pre-built request per trace entry). gRPC has no
wrk; its closed-loop Python client (one process, ``--connections`` concurrent calls)
shares the 2 cores with the server, so its req/s are a lower bound. Beside req/s, each
mode's **serval CPU per request**: the CPU seconds serval's processes (this process'
descendants: controller, proxy, replicas; not this process, where the gRPC client runs,
nor wrk) spent in the measurement, over its requests. That is the protocol's cost to
the server whatever the client can drive, and on a noisy VM far steadier than req/s.
Target: OIP REST within 15% of ``/score`` (req/s). Run: ``python benchmarks/oip.py
[--quick]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from typing import Any

import numpy as np

from benchmarks._harness import wrk
from benchmarks._harness.cputime import tree_cpu_s
from benchmarks._harness.procs import free_port
from benchmarks._harness.results import print_tables, results_table, save_results
from benchmarks._harness.stats import ErrorCounts, Measurement, Result, percentile

REGISTRY = Path(tempfile.gettempdir()) / "serval-bench-oip-registry"
MODES = ("score", "oip-json", "oip-binary", "oip-grpc")
SERVICER = "serval.protocols.oip.grpc:add_GRPCInferenceServiceServicer_to_server"


def zipf_trace(n: int, tenants: int, s: float, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, tenants + 1) ** s
    ranks = rng.choice(tenants, size=n, p=weights / weights.sum())
    return [f"tenant{r + 1}" for r in ranks]


def _lua_bytes(data: bytes) -> str:
    return '"' + "".join(f"\\{b}" for b in data) + '"'


def request_lua(mode: str, trace: list[str], rows: np.ndarray) -> str:
    """Lua whose ``request()`` sends the trace's requests in turn, for ``mode``."""
    entries = []
    for tenant in trace:
        headers = {"Content-Type": "application/json"}
        if mode == "score":
            path = "/score"
            body = json.dumps({"tenant": tenant, "data": rows.tolist()}).encode()
        else:
            path = f"/v2/models/{tenant}/infer"
            tensor: dict[str, Any] = {"name": "input-0", "datatype": "FP64", "shape": [3, 4]}
            if mode == "oip-json":
                tensor["data"] = rows.reshape(-1).tolist()
                out: dict[str, Any] = {"name": "predict"}
                body = json.dumps({"inputs": [tensor], "outputs": [out]}).encode()
            else:
                raw = rows.astype("<f8").tobytes()
                tensor["parameters"] = {"binary_data_size": len(raw)}
                out = {"name": "predict", "parameters": {"binary_data": True}}
                head = json.dumps({"inputs": [tensor], "outputs": [out]}).encode()
                headers = {
                    "Content-Type": "application/octet-stream",
                    "Inference-Header-Content-Length": str(len(head)),
                }
                body = head + raw
        hdrs = ", ".join(f'["{k}"] = "{v}"' for k, v in headers.items())
        entries.append(f'{{"{path}", {{{hdrs}}}, {_lua_bytes(body)}}}')
    return (
        "local reqs = {\n" + ",\n".join(entries) + "\n}\n"
        "local i = 0\n"
        "request = function()\n"
        "  i = i % #reqs + 1\n"
        "  local r = reqs[i]\n"
        '  return wrk.format("POST", r[1], r[2], r[3])\n'
        "end\n"
    )


def run_wrk(base: str, lua: str, connections: int, seconds: float) -> Measurement:
    fd, path = tempfile.mkstemp(suffix=".lua", prefix="serval-oip-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(lua + wrk.REPORT_LUA)
        argv = wrk.command(base, connections, seconds, path, threads=1, timeout_s=10)
        import subprocess

        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    finally:
        os.unlink(path)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed: {proc.stderr or proc.stdout}")
    return wrk.parse_output(proc.stdout)


async def _grpc_load(
    target: str, trace: list[str], rows: np.ndarray, conns: int, seconds: float
) -> Measurement:
    import grpc

    from serval.protocols.oip import grpc_predict_v2_pb2

    pb: Any = grpc_predict_v2_pb2
    from serval.protocols.oip import grpc_predict_v2_pb2_grpc as pb_grpc

    raw = rows.astype("<f8").tobytes()
    requests = [
        pb.ModelInferRequest(
            model_name=t,
            inputs=[
                pb.ModelInferRequest.InferInputTensor(name="input-0", datatype="FP64", shape=[3, 4])
            ],
            outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name="predict")],
            raw_input_contents=[raw],
        )
        for t in trace
    ]
    latencies: list[float] = []
    errors = 0
    position = 0
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
        deadline = time.perf_counter() + seconds

        async def client() -> None:
            nonlocal position, errors
            while time.perf_counter() < deadline:
                request = requests[position % len(requests)]
                position += 1
                started = time.perf_counter()
                try:
                    await stub.ModelInfer(request, timeout=10)
                except grpc.aio.AioRpcError:
                    errors += 1
                latencies.append((time.perf_counter() - started) * 1e3)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(conns)))
        elapsed = time.perf_counter() - started
    return Measurement(
        requests=len(latencies),
        duration_s=elapsed,
        errors=ErrorCounts(0, 0, 0, errors, 0),
        p50_ms=percentile(latencies, 50),
        p90_ms=percentile(latencies, 90),
        p99_ms=percentile(latencies, 99),
    )


def serval_cpu_s() -> float:
    """CPU seconds of this process' descendants (the serval instance it started), this
    process (the gRPC client) left out; wrk runs and exits between two readings."""
    with open(f"/proc/{os.getpid()}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return tree_cpu_s(os.getpid()) - own


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--zipf", type=float, default=1.1)
    parser.add_argument("--trace", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="one short round")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.rounds = 5, 1

    import serval
    from serval.apps._tenants import generate, sample_rows
    from serval.apps.many_models import ManyModelsConfig, build_app

    REGISTRY.mkdir(exist_ok=True)
    for _ in generate(str(REGISTRY), args.tenants):
        pass
    trace = zipf_trace(args.trace, args.tenants, args.zipf, seed=5)
    rows = np.asarray(sample_rows(3), dtype=np.float64)
    http_port, grpc_port = free_port(), free_port()
    serval.start(
        http_options={"port": http_port},
        grpc_options={"port": grpc_port, "grpc_servicer_functions": [SERVICER]},
    )
    try:
        serval.run(
            build_app(ManyModelsConfig(registry=str(REGISTRY), watch_interval_s=0)),
            name="many_models",
            route_prefix="/",
        )
        base = f"http://127.0.0.1:{http_port}"
        luas = {m: request_lua(m, trace, rows) for m in MODES if m != "oip-grpc"}
        run_wrk(base, luas["score"], args.connections, args.seconds)  # warm the caches
        rounds: dict[str, list[Measurement]] = {m: [] for m in MODES}
        cpu: dict[str, list[float]] = {m: [] for m in MODES}  # serval CPU µs per request
        for i in range(args.rounds):
            for mode in MODES if i % 2 else MODES[::-1]:  # no mode always goes first
                before = serval_cpu_s()
                if mode == "oip-grpc":
                    m = asyncio.run(
                        _grpc_load(
                            f"127.0.0.1:{grpc_port}", trace, rows, args.connections, args.seconds
                        )
                    )
                else:
                    m = run_wrk(base, luas[mode], args.connections, args.seconds)
                rounds[mode].append(m)
                cpu[mode].append((serval_cpu_s() - before) / max(m.requests, 1) * 1e6)
    finally:
        serval.shutdown()
    results = []
    for mode, ms in rounds.items():
        best = sorted(ms, key=lambda m: m.rps)[len(ms) // 2]  # the (upper) median round
        results.append(
            Result.from_measurement(
                best, system="serval", scenario=mode, concurrency=args.connections
            )
        )
    score = next(r for r in results if r.scenario == "score")
    us = {mode: statistics.median(values) for mode, values in cpu.items()}
    print_tables(results_table(results, title="OIP v2 vs /score (1,000-tenant Zipf trace)"))
    print(f"{'score':>11}: serval CPU per request {us['score']:.0f} µs")
    for r in results[1:]:
        print(
            f"{r.scenario:>11}: {r.rps / score.rps:.2f}x /score req/s, "
            f"p99 {r.p99_ms:.1f} ms vs {score.p99_ms:.1f} ms; serval CPU per request "
            f"{us[r.scenario]:.0f} µs ({us[r.scenario] / us['score']:.2f}x /score's)"
        )
    settings = {**vars(args), "serval_cpu_us_per_request": {m: round(v, 1) for m, v in us.items()}}
    path = save_results(results, benchmark="oip", settings=settings)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
