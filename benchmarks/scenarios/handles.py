"""Python handle calls: the hello deployment called from the driver through a handle,
by 1 and 32 concurrent asyncio callers.

Limit: the handler called directly by the same callers. Peer: Ray Serve's handle.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from benchmarks._bench.cells import Cell, Role
from benchmarks._bench.children import run_child
from benchmarks.scenarios._context import MODULES, RAY, SERVAL, Context

NAME = "handles"
CONCURRENCIES = (1, 32)
DIRECT = "direct call"
UNIT = "calls/s"


def point(conns: int) -> str:
    return f"handle c{conns}"


def cells_from(result: dict[str, Any], system: str, role: Role) -> list[Cell]:
    return [
        Cell(
            point(p["concurrency"]),
            system,
            role,
            rps=p["rps"],
            p50_ms=p["p50_ms"],
            p99_ms=p["p99_ms"],
            requests=p["requests"],
            errors=p["errors"],
            unit=UNIT,
            concurrency=p["concurrency"],
        )
        for p in result["points"]
    ]


def run(ctx: Context) -> list[Cell]:
    s = ctx.settings
    points = [point(c) for c in CONCURRENCIES]
    args = [
        "handles",
        "--concurrency",
        ",".join(map(str, CONCURRENCIES)),
        "--duration",
        str(s.duration_s),
        "--warmup",
        str(s.warmup_s),
    ]

    def measure(module: str, system: str, role: Role) -> list[Cell]:
        result = run_child(module, args, timeout_s=s.start_timeout_s, python=s.python)
        return cells_from(result, system, role)

    cells = ctx.attempt(points, DIRECT, Role.LIMIT, lambda: measure("direct", DIRECT, Role.LIMIT))
    cells += ctx.attempt(
        points, SERVAL, Role.SERVAL, lambda: measure(MODULES[SERVAL], SERVAL, Role.SERVAL)
    )
    for peer in s.peer_systems((RAY,)):
        cells += ctx.attempt(
            points, peer, Role.PEER, partial(measure, MODULES[peer], peer, Role.PEER)
        )
    return cells
