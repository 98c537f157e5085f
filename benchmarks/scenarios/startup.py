"""Time from ``run`` to the first successful response, in a fresh process.

Each system's process starts its framework (Ray Serve: ``ray.init`` and
``serve.start``; serval: ``serve.start``), runs the hello app, and POSTs until a 200:
the clock starts before the framework is started, imports excluded. The median of
``startup_rounds`` fresh starts; the hello scenario's starts, measured the same way in
the same run, count among them. serval against Ray Serve.
"""

from __future__ import annotations

import statistics
from functools import partial

from benchmarks._bench.cells import Cell, Role
from benchmarks._bench.children import serving
from benchmarks.scenarios._context import MODULES, RAY, SERVAL, Context

NAME = "startup"
POINT = "startup"


def run(ctx: Context) -> list[Cell]:
    s = ctx.settings

    def measure(system: str, role: Role) -> list[Cell]:
        reused = ctx.startup_samples.get(system, [])[: s.startup_rounds]
        times = list(reused)
        while len(times) < max(1, s.startup_rounds):
            with serving(
                MODULES[system], "hello", timeout_s=s.start_timeout_s, python=s.python
            ) as r:
                times.append(float(r["startup_s"]))
        note = f"median of {len(times)}" if len(times) > 1 else ""
        if reused:
            note += (", " if note else "") + f"{len(reused)} from the hello scenario"
        return [
            Cell(
                POINT,
                system,
                role,
                startup_s=statistics.median(times),
                compare_on="startup_s",
                note=note,
            )
        ]

    cells = ctx.attempt([POINT], SERVAL, Role.SERVAL, lambda: measure(SERVAL, Role.SERVAL))
    for peer in s.peer_systems((RAY,)):
        cells += ctx.attempt([POINT], peer, Role.PEER, partial(measure, peer, Role.PEER))
    return cells
