"""serval's side of every scenario (run by benchmarks/bench.py in a process of its own).

    python -m benchmarks.systems.serval_apps serve {hello,pipeline,batching}
    python -m benchmarks.systems.serval_apps serve oip --registry DIR
    python -m benchmarks.systems.serval_apps handles --concurrency N --duration S --warmup S

Deployments get ``max_ongoing_requests=100``, the throughput setting Ray Serve's docs
give and the same options as Ray Serve's side; batching reuses benchmarks/batching.py.
``oip`` is the many-models app on its defaults (what ``serval run
serval.apps.many_models:app --registry DIR`` serves) over the registry of
benchmarks/systems/_oip.py: OIP v2 REST and ``/score`` on the same instance.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

import argparse
import asyncio
import time
from typing import Any

import serval as serve
from benchmarks import batching, http_overhead
from benchmarks.systems import _child, _oip
from benchmarks.systems._handlers import predict, tokenize

THROUGHPUT_OPTIONS: dict[str, Any] = {"max_ongoing_requests": 100}


@serve.deployment(**THROUGHPUT_OPTIONS)
class Model:
    def __call__(self, tokens: list[str]) -> str:
        return predict(tokens)


@serve.deployment(**THROUGHPUT_OPTIONS)
class Ingress:
    def __init__(self, model: Any) -> None:
        self.model = model

    async def __call__(self, request: Any) -> str:
        body = await request.json()
        result: str = await self.model.remote(tokenize(body["text"]))
        return result


def app(name: str) -> Any:
    if name == "hello":
        return http_overhead.hello.options(**THROUGHPUT_OPTIONS).bind()
    if name == "pipeline":
        return Ingress.bind(Model.bind())  # type: ignore[attr-defined]
    if name == "batching":
        batched, _ = batching._deployments()
        return batched.bind()  # type: ignore[attr-defined]
    raise ValueError(f"unknown app {name!r}")


def cmd_serve(name: str) -> None:
    started = time.perf_counter()
    with http_overhead.serval_instance() as url:
        serve.run(app(name), name=name, route_prefix="/")
        _child.report_ready(url, started)
        _child.wait_for_stdin_eof()


def cmd_serve_oip(registry: str) -> None:
    from serval.apps.many_models import ManyModelsConfig, build_app

    started = time.perf_counter()
    with http_overhead.serval_instance() as url:
        serve.run(build_app(ManyModelsConfig(registry=registry)), name="oip", route_prefix="/")
        base = url.rstrip("/")
        _child.report_ready(
            base + _oip.INFER_PATH,
            started,
            body=_oip.infer_body(),
            score_url=base + _oip.SCORE_PATH,
        )
        _child.wait_for_stdin_eof()


def cmd_handles(points: list[int], duration_s: float, warmup_s: float) -> None:
    with http_overhead.serval_instance():
        handle = serve.run(http_overhead.hello.options(**THROUGHPUT_OPTIONS).bind(), name="h")

        async def call() -> object:
            return await handle.remote(None)

        measured = asyncio.run(_child.drive_points(call, points, duration_s, warmup_s))
    _child.emit("result", points=measured)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve")
    s.add_argument("app", choices=("hello", "pipeline", "batching", "oip"))
    s.add_argument("--registry", help="oip: the model registry (benchmarks/systems/_oip.py)")
    h = sub.add_parser("handles")
    _child.add_handles_args(h)
    args = p.parse_args(argv)
    if args.command == "serve" and args.app == "oip":
        if not args.registry:
            p.error("serve oip needs --registry")
        cmd_serve_oip(args.registry)
    elif args.command == "serve":
        cmd_serve(args.app)
    else:
        cmd_handles(args.concurrency, args.duration, args.warmup)


if __name__ == "__main__":
    main()
