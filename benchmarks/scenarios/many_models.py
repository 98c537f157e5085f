"""Many models on a Zipf trace (benchmarks/many_models.py): 1,000 tenant models, 2
replicas with 32 hot models each, wrk with 16 connections playing the trace.

serval runs the Ray Serve user's code unchanged (defaults); a tuned variant
(``max_concurrent_loads=32``) is shown beside it, labelled. Limits: Belady's bound on
loads over the requests serval played, and the ideal bound on req/s (Belady's loads at
full client concurrency; see benchmarks/many_models.py). Peer: Ray Serve's
``@serve.multiplexed``.
"""

from __future__ import annotations

from typing import Any

from benchmarks._bench.cells import Cell, Role
from benchmarks._bench.children import run_child
from benchmarks.scenarios._context import RAY, SERVAL, Context

NAME = "many_models"
POINT = "many models"
BELADY = "Belady bound"
IDEAL = "ideal bound"
TUNED_POINT = "many models, tuned (max_concurrent_loads=32)"  # its own row: not "ours"


def run(ctx: Context) -> list[Cell]:
    s = ctx.settings
    duration = str(max(1.0, s.duration_s))  # wrk plays the trace this long (whole seconds)
    seen: dict[str, dict[str, Any]] = {}

    def measure(system: str, child: str, role: Role, point: str = POINT) -> list[Cell]:
        args = [child, "--duration", duration]
        r = run_child("many_models", args, timeout_s=s.start_timeout_s + 600, python=s.python)
        seen[child] = r
        share = r["rps"] / r["ideal_rps"] if r["ideal_rps"] else 0.0
        return [
            Cell(
                point,
                system,
                role,
                rps=r["rps"],
                p50_ms=r["p50_ms"],
                p99_ms=r["p99_ms"],
                requests=r["requests"],
                errors=r["errors"],
                loads=r["loads"],
                concurrency=r["concurrency"],
                note=f"{share:.0%} of the ideal bound; {r['loads'] / max(1, r['belady']):.2f}x "
                f"Belady's loads over its {r['requests']} requests",
            )
        ]

    def limits() -> list[Cell]:
        r = seen["serval"]
        note = f"over the {r['requests']} requests serval (defaults) played"
        return [
            Cell(POINT, BELADY, Role.LIMIT, loads=r["belady"], compare_on="loads", note=note),
            Cell(POINT, IDEAL, Role.LIMIT, rps=r["ideal_rps"], compare_on="rps", note=note),
        ]

    cells = ctx.attempt(
        [POINT], SERVAL, Role.SERVAL, lambda: measure(SERVAL, "serval", Role.SERVAL)
    )
    if "serval" in seen:
        cells += ctx.attempt([POINT], BELADY, Role.LIMIT, limits)
    cells += ctx.attempt(
        [TUNED_POINT],
        SERVAL,
        Role.SERVAL,
        lambda: measure(SERVAL, "serval-tuned", Role.SERVAL, TUNED_POINT),
    )
    if RAY in s.peer_systems((RAY,)):
        cells += ctx.attempt([POINT], RAY, Role.PEER, lambda: measure(RAY, "ray", Role.PEER))
    return cells
