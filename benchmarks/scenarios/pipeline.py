"""A two-deployment pipeline over HTTP: an ingress that tokenizes and calls a model
deployment through a handle (benchmarks/systems/_handlers.py), at 1 and 32 connections.

serval against Ray Serve (both with ``max_ongoing_requests=100`` on each deployment).
No limit: what is measured is the framework's cost of a second hop.
"""

from __future__ import annotations

from functools import partial

from benchmarks._bench.cells import Cell, Role
from benchmarks._bench.children import serving
from benchmarks.scenarios._context import MODULES, RAY, SERVAL, Context, http_cell
from benchmarks.systems._handlers import BODY

NAME = "pipeline"
CONCURRENCIES = (1, 32)


def point(conns: int) -> str:
    return f"pipeline c{conns}"


def run(ctx: Context) -> list[Cell]:
    points = [point(c) for c in CONCURRENCIES]
    s = ctx.settings

    def measure(system: str, role: Role) -> list[Cell]:
        with serving(MODULES[system], NAME, timeout_s=s.start_timeout_s, python=s.python) as ready:
            return [
                http_cell(ctx.measure_http(ready["url"], c, BODY), point(c), system, role, c)
                for c in CONCURRENCIES
            ]

    cells = ctx.attempt(points, SERVAL, Role.SERVAL, lambda: measure(SERVAL, Role.SERVAL))
    for peer in s.peer_systems((RAY,)):
        cells += ctx.attempt(points, peer, Role.PEER, partial(measure, peer, Role.PEER))
    return cells
