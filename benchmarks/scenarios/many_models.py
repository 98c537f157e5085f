"""Many models on a Zipf trace (benchmarks/many_models.py): 1,000 tenant models, 2
replicas with 32 hot models each, 16 closed-loop clients.

Limit: Belady's bound on loads (the optimal offline policy, one cache of the fleet's
capacity). Peer: Ray Serve's ``@serve.multiplexed``. serval is compared with the limit
on loads and with Ray Serve on req/s.
"""

from __future__ import annotations

import dataclasses

from benchmarks import many_models
from benchmarks._bench.cells import Cell, Role
from benchmarks._bench.children import run_child
from benchmarks.scenarios._context import RAY, SERVAL, Context

NAME = "many_models"
POINT = "many models"
BELADY = "Belady bound"


def belady_cell(requests: int) -> Cell:
    s = dataclasses.replace(many_models.Settings(), requests=requests)
    trace = many_models.zipf_trace(s.requests, s.tenants, s.zipf, s.seed)
    bound = many_models.belady_loads(trace, 2 * s.capacity)
    note = f"{s.requests} requests, Zipf({s.zipf}), {s.tenants} tenants"
    return Cell(POINT, BELADY, Role.LIMIT, loads=bound, compare_on="loads", note=note)


def run(ctx: Context) -> list[Cell]:
    s = ctx.settings
    n = s.many_models_requests

    def measure(system: str, name: str, role: Role) -> list[Cell]:
        args = [name, "--requests", str(n)]
        r = run_child("many_models", args, timeout_s=s.start_timeout_s + 600, python=s.python)
        return [
            Cell(
                POINT,
                system,
                role,
                rps=r["rps"],
                p50_ms=r["p50_ms"],
                p99_ms=r["p99_ms"],
                requests=r["requests"],
                errors=r["errors"],
                loads=r["loads"],
                concurrency=r["concurrency"],
            )
        ]

    cells = ctx.attempt([POINT], BELADY, Role.LIMIT, lambda: [belady_cell(n)])
    cells += ctx.attempt(
        [POINT], SERVAL, Role.SERVAL, lambda: measure(SERVAL, "serval", Role.SERVAL)
    )
    if RAY in s.peer_systems((RAY,)):
        cells += ctx.attempt([POINT], RAY, Role.PEER, lambda: measure(RAY, "ray", Role.PEER))
    return cells
