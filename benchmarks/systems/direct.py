"""The limits: the same work with no serving framework, in a process of its own.

    python -m benchmarks.systems.direct handles --concurrency 1,32 --duration S --warmup S
    python -m benchmarks.systems.direct batching --duration S

``handles``: the hello handler called directly by the same asyncio callers that drive
the handles (what a handle call costs on top is the framework's). ``batching``: the
batching model called back to back at each batch size; the best items/s
(benchmarks/batching.py ``direct_limit``). The HTTP limit, bare uvicorn, is
benchmarks/_bare_app.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

import argparse
import asyncio

from benchmarks.systems import _child
from benchmarks.systems._handlers import hello


def cmd_handles(concurrencies: list[int], duration_s: float, warmup_s: float) -> None:
    async def call() -> object:
        return hello()

    points = asyncio.run(_child.drive_points(call, concurrencies, duration_s, warmup_s))
    _child.emit("result", points=points)


def cmd_batching(duration_s: float) -> None:
    from benchmarks import batching

    items_per_s, best_batch, one_item_s = batching.direct_limit(duration_s)
    _child.emit("result", rps=items_per_s, best_batch=best_batch, one_item_ms=one_item_s * 1e3)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    h = sub.add_parser("handles")
    _child.add_handles_args(h)
    b = sub.add_parser("batching")
    b.add_argument("--duration", type=float, required=True)
    args = p.parse_args(argv)
    if args.command == "handles":
        cmd_handles(args.concurrency, args.duration, args.warmup)
    else:
        cmd_batching(args.duration)


if __name__ == "__main__":
    main()
