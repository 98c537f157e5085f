"""WebSockets and gRPC through serval against the same handler served directly.

One run measures, side by side (interleaved, ``--rounds`` times):

- WebSocket echo: ``--sockets`` concurrent sockets, each sending a message and waiting
  for its echo, for ``--duration`` s. Direct: the echo as a bare ASGI app on uvicorn.
  serval: the same ASGI app as an ``@serve.ingress`` deployment, through the proxy
  (``max_ongoing_requests=100``: an open socket holds one of the replica's slots).
- gRPC unary: ``--calls`` concurrent calls in flight. Direct: a bare ``grpc.aio`` server
  implementing the method. serval: the gRPC ingress (``grpc_options``) and a deployment
  implementing it, defaults as a Ray Serve user writes them.

It prints messages (calls) per second, p50 and p99, and serval's share of the direct
figure (target: ≥ 40%, as HTTP reaches). The load generator is one Python process
(``websockets`` / ``grpc.aio`` clients): its own ceiling bounds both figures, so on this
2-core machine the direct figure is partly the client's limit; the ratio is what to read.

Run: python benchmarks/protocols.py [--duration S] [--rounds N]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks._harness.procs import ServerProcess, free_port
from benchmarks._harness.stats import percentile

PROTO = """
syntax = "proto3";
package bench;
service Echo { rpc Say (Msg) returns (Msg); }
message Msg { string text = 1; }
"""

BARE_WS = """
import sys, uvicorn
from benchmarks.protocols import ws_echo_asgi
uvicorn.run(ws_echo_asgi, port=int(sys.argv[1]), log_level="warning", http="httptools")
"""

BARE_GRPC = """
import asyncio, sys, grpc
sys.path.insert(0, sys.argv[2])
import bench_pb2, bench_pb2_grpc
class Echo(bench_pb2_grpc.EchoServicer):
    async def Say(self, request, context):
        return bench_pb2.Msg(text=request.text)
async def main():
    server = grpc.aio.server()
    bench_pb2_grpc.add_EchoServicer_to_server(Echo(), server)
    server.add_insecure_port(f"127.0.0.1:{sys.argv[1]}")
    await server.start()
    await server.wait_for_termination()
asyncio.run(main())
"""


async def ws_echo_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The echo both sides serve: bare on uvicorn (BARE_WS), and deployed on serval."""
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        m = await receive()
        if m["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": m.get("text")})


async def _drive(
    workers: int, duration_s: float, one: Callable[[int], Awaitable[Callable[[], Awaitable[None]]]]
) -> tuple[float, float, float]:
    """``workers`` loops of ``op()`` for ``duration_s``; (ops/s, p50 ms, p99 ms)."""
    latencies: list[float] = []
    stop = time.monotonic() + duration_s

    async def loop(i: int) -> None:
        op = await one(i)
        while True:  # at least one op each, however short the run (a busy machine)
            t0 = time.perf_counter()
            await op()
            latencies.append(time.perf_counter() - t0)
            if time.monotonic() >= stop:
                return

    started = time.monotonic()
    await asyncio.gather(*(loop(i) for i in range(workers)))
    elapsed = time.monotonic() - started
    ms = [x * 1000 for x in latencies]
    return len(latencies) / elapsed, percentile(ms, 50), percentile(ms, 99)


async def ws_load(url: str, sockets: int, duration_s: float) -> tuple[float, float, float]:
    import websockets

    conns: list[Any] = []

    async def one(i: int) -> Callable[[], Awaitable[None]]:
        ws = await websockets.connect(url, compression=None)
        conns.append(ws)

        async def op() -> None:
            await ws.send("hello")
            await ws.recv()

        return op

    try:
        return await _drive(sockets, duration_s, one)
    finally:
        for ws in conns:
            await ws.close()


async def grpc_load(target: str, calls: int, duration_s: float) -> tuple[float, float, float]:
    import bench_pb2
    import bench_pb2_grpc
    import grpc

    async with grpc.aio.insecure_channel(target) as channel:
        stub = bench_pb2_grpc.EchoStub(channel)
        msg = bench_pb2.Msg(text="hello")

        meta = (("application", "grpc"),)

        async def one(i: int) -> Callable[[], Awaitable[None]]:
            async def op() -> None:
                await stub.Say(msg, metadata=meta)

            return op

        return await _drive(calls, duration_s, one)


def _generate_protos(out: str) -> None:
    from grpc_tools import protoc

    with open(os.path.join(out, "bench.proto"), "w") as f:
        f.write(textwrap.dedent(PROTO))
    args = ["protoc", f"-I{out}", f"--python_out={out}", f"--grpc_python_out={out}"]
    if protoc.main([*args, "bench.proto"]) != 0:
        raise RuntimeError("protoc failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sockets", type=int, default=16)
    parser.add_argument("--calls", type=int, default=16)
    args = parser.parse_args()

    import serval as serve

    workdir = tempfile.mkdtemp(prefix="svproto")
    _generate_protos(workdir)
    sys.path.insert(0, workdir)
    os.environ["PYTHONPATH"] = os.pathsep.join([workdir, os.environ.get("PYTHONPATH", "")])
    os.environ.setdefault("SERVAL_HOME", workdir)
    os.environ.setdefault("SERVAL_NAMESPACE", "bench-protocols")

    ws_port, grpc_port, http_port, sgrpc_port = (free_port() for _ in range(4))
    bare_ws = ServerProcess([sys.executable, "-c", BARE_WS, str(ws_port)], port=ws_port)
    bare_grpc = ServerProcess(
        [sys.executable, "-c", BARE_GRPC, str(grpc_port), workdir], port=grpc_port
    )

    @serve.deployment(max_ongoing_requests=100)  # an open socket holds a slot
    @serve.ingress(ws_echo_asgi)
    class WsEcho:
        pass

    @serve.deployment
    class GrpcEcho:
        def Say(self, request: Any) -> Any:  # the RPC's name
            import bench_pb2

            return bench_pb2.Msg(text=request.text)

    serve.start(
        http_options={"port": http_port},
        grpc_options={
            "port": sgrpc_port,
            "grpc_servicer_functions": ["bench_pb2_grpc:add_EchoServicer_to_server"],
        },
    )
    serve.run(WsEcho.bind(), name="ws", route_prefix="/ws")  # type: ignore[attr-defined]
    serve.run(GrpcEcho.bind(), name="grpc", route_prefix=None)  # type: ignore[attr-defined]
    figures: dict[str, list[tuple[float, float, float]]] = {}
    cases = {
        "websocket direct": lambda: ws_load(
            f"ws://127.0.0.1:{ws_port}/", args.sockets, args.duration
        ),
        "websocket serval": lambda: ws_load(
            f"ws://127.0.0.1:{http_port}/ws/", args.sockets, args.duration
        ),
        "grpc direct": lambda: grpc_load(f"127.0.0.1:{grpc_port}", args.calls, args.duration),
        "grpc serval": lambda: grpc_load(f"127.0.0.1:{sgrpc_port}", args.calls, args.duration),
    }
    try:
        with bare_ws, bare_grpc:
            for case in cases.values():  # warm-up
                asyncio.run(_warm(case))
            for _ in range(args.rounds):
                for name, case in cases.items():
                    figures.setdefault(name, []).append(asyncio.run(case()))
    finally:
        serve.shutdown()
        subprocess.run(["rm", "-rf", workdir], check=False)
    _report(figures, args)


async def _warm(case: Callable[[], Awaitable[Any]]) -> None:
    await case()


def _report(figures: dict[str, list[tuple[float, float, float]]], args: Any) -> None:
    print(
        f"\nprotocols: medians of {args.rounds} rounds, {args.duration:.0f} s each, "
        f"{args.sockets} sockets / {args.calls} calls in flight (one Python client)"
    )
    print(f"{'case':<18}{'ops/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    med: dict[str, tuple[float, float, float]] = {}
    for name, runs in figures.items():
        med[name] = tuple(statistics.median(r[i] for r in runs) for i in range(3))  # type: ignore[assignment]
        ops, p50, p99 = med[name]
        print(f"{name:<18}{ops:>10,.0f}{p50:>9.2f}{p99:>9.2f}")
    for proto in ("websocket", "grpc"):
        share = med[f"{proto} serval"][0] / med[f"{proto} direct"][0]
        verdict = "PASS" if share >= 0.40 else "MISS"
        print(
            f"{proto}: serval reaches {share:.0%} of the direct figure (target >= 40%): {verdict}"
        )


if __name__ == "__main__":
    main()
