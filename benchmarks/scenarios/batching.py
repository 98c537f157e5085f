"""Batching over HTTP: the model of benchmarks/batching.py behind each framework's
dynamic batching (``max_batch_size`` 32, 10 ms wait), at 64 connections, in items/s.

Limit: the model called directly at its best batch size (``batching.direct_limit``).
Peers: Ray Serve's ``@serve.batch``, LitServe's ``LitAPI(max_batch_size=...)``.
"""

from __future__ import annotations

from functools import partial

from benchmarks._bench.cells import Cell, Role
from benchmarks._bench.children import run_child, serving
from benchmarks.scenarios._context import LITSERVE, MODULES, RAY, SERVAL, Context, http_cell
from benchmarks.systems._handlers import BODY, MAX_BATCH

NAME = "batching"
CONNECTIONS = MAX_BATCH * 2
POINT = f"batching c{CONNECTIONS}"
DIRECT = "direct, best batch"
UNIT = "items/s"


def run(ctx: Context) -> list[Cell]:
    s = ctx.settings

    def limit() -> list[Cell]:
        # direct_limit spreads its time over 6 batch sizes: give each the point's duration.
        args = ["batching", "--duration", str(s.duration_s * 6)]
        result = run_child("direct", args, timeout_s=s.start_timeout_s, python=s.python)
        note = f"batch {result['best_batch']}; 1 item {result['one_item_ms']:.2f} ms"
        return [Cell(POINT, DIRECT, Role.LIMIT, rps=result["rps"], unit=UNIT, note=note)]

    def measure(system: str, role: Role) -> list[Cell]:
        with serving(MODULES[system], NAME, timeout_s=s.start_timeout_s, python=s.python) as ready:
            m = ctx.measure_http(ready["url"], CONNECTIONS, BODY)
        return [http_cell(m, POINT, system, role, CONNECTIONS, unit=UNIT)]

    cells = ctx.attempt([POINT], DIRECT, Role.LIMIT, limit)
    cells += ctx.attempt([POINT], SERVAL, Role.SERVAL, lambda: measure(SERVAL, Role.SERVAL))
    for peer in s.peer_systems((RAY, LITSERVE)):
        cells += ctx.attempt([POINT], peer, Role.PEER, partial(measure, peer, Role.PEER))
    return cells
