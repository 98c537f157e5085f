"""Ray Serve's side of every scenario, configured as its docs recommend for throughput.

    python -m benchmarks.systems.ray_apps serve {hello,pipeline,batching}
    python -m benchmarks.systems.ray_apps handles --concurrency N --duration S --warmup S

Throughput settings (Ray Serve's "Performance tuning" guide and its high-throughput
mode): ``RAY_SERVE_THROUGHPUT_OPTIMIZED=1`` (set before Ray is imported, unless the
caller chose a value) and ``max_ongoing_requests=100`` on every deployment; the handler
bodies and the batching model are serval's (benchmarks/systems/_handlers.py,
benchmarks/batching.py). Needs the peers' virtualenv (``make bench-env``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

os.environ.setdefault("RAY_SERVE_THROUGHPUT_OPTIMIZED", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local, single-user cluster

import argparse
import asyncio
import time
from typing import Any

from benchmarks._harness.procs import free_port
from benchmarks.systems import _child
from benchmarks.systems._handlers import MAX_BATCH, hello, predict, tokenize

THROUGHPUT_OPTIONS: dict[str, Any] = {"max_ongoing_requests": 100}


def _hello_endpoint(request: Any) -> str:
    return hello()


class Model:
    def __call__(self, tokens: list[str]) -> str:
        return predict(tokens)


class Ingress:
    def __init__(self, model: Any) -> None:
        self.model = model

    async def __call__(self, request: Any) -> str:
        body = await request.json()
        result: str = await self.model.remote(tokenize(body["text"]))
        return result


def _batched(serve: Any) -> type:
    """serval's batching deployment (benchmarks/batching.py), with ``@serve.batch``."""

    class Batched:
        def __init__(self) -> None:
            import threadpoolctl

            from benchmarks.batching import Model as BatchModel

            threadpoolctl.threadpool_limits(1)
            self.model = BatchModel()

        @serve.batch(max_batch_size=MAX_BATCH, batch_wait_timeout_s=0.01)  # type: ignore[untyped-decorator]
        async def predict(self, idx: list[int]) -> list[float]:
            return await asyncio.to_thread(self.model, idx)

        async def __call__(self, request: Any) -> float:
            return float(await self.predict(int(request.query_params.get("i", "0"))))

    return Batched


def _app(serve: Any, name: str) -> Any:
    """An app, built once Ray is imported (this module imports without Ray)."""
    deployment = serve.deployment
    if name == "hello":
        return deployment(**THROUGHPUT_OPTIONS)(_hello_endpoint).bind()
    if name == "pipeline":
        model = deployment(**THROUGHPUT_OPTIONS)(Model).bind()
        return deployment(**THROUGHPUT_OPTIONS)(Ingress).bind(model)
    if name == "batching":
        return deployment(max_ongoing_requests=MAX_BATCH * 2)(_batched(serve)).bind()
    raise ValueError(f"unknown app {name!r}")


def _start(port: int) -> Any:
    import ray
    from ray import serve

    # address="local": always a new cluster of our own, never one found on the machine
    # (other work may run Ray here; connecting to it would skew both).
    ray.init(address="local", include_dashboard=False, log_to_driver=False, configure_logging=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    return serve


def _stop(serve: Any) -> None:
    # ray.shutdown() stops the local cluster this process started, Serve with it;
    # serve.shutdown() first can wait 30 s on the controller and measures nothing.
    import ray

    ray.shutdown()


def cmd_serve(name: str) -> None:
    started = time.perf_counter()
    port = free_port()
    serve = _start(port)
    try:
        serve.run(_app(serve, name), name=name, route_prefix="/")
        _child.report_ready(f"http://127.0.0.1:{port}/", started)
        _child.wait_for_stdin_eof()
    finally:
        _stop(serve)


def cmd_handles(points: list[int], duration_s: float, warmup_s: float) -> None:
    serve = _start(free_port())
    try:
        handle = serve.run(_app(serve, "hello"), name="h", route_prefix=None)

        async def call() -> object:
            return await handle.remote(None)

        measured = asyncio.run(_child.drive_points(call, points, duration_s, warmup_s))
    finally:
        _stop(serve)
    _child.emit("result", points=measured)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve")
    s.add_argument("app", choices=("hello", "pipeline", "batching"))
    h = sub.add_parser("handles")
    _child.add_handles_args(h)
    args = p.parse_args(argv)
    if args.command == "serve":
        cmd_serve(args.app)
    else:
        cmd_handles(args.concurrency, args.duration, args.warmup)


if __name__ == "__main__":
    main()
