"""Hello world over HTTP at 1 and 32 keep-alive connections.

Limit: bare uvicorn serving the same handler (benchmarks/_bare_app.py). Peers: Ray
Serve, LitServe. Every system gets the same JSON POST; one system runs at a time, each
in its own process, warmed up at every point before it is measured.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from benchmarks import _bare_app
from benchmarks._bench.cells import Cell, Role
from benchmarks._bench.children import serving
from benchmarks._harness.procs import ServerProcess, free_port
from benchmarks.scenarios._context import (
    BARE,
    LITSERVE,
    MODULES,
    RAY,
    SERVAL,
    Context,
    http_cell,
)
from benchmarks.systems._handlers import BODY

NAME = "hello"
CONCURRENCIES = (1, 32)


def point(conns: int) -> str:
    return f"hello c{conns}"


@contextmanager
def bare_uvicorn(python: str = sys.executable) -> Iterator[str]:
    """The limit: the handler as a plain ASGI app on uvicorn; yields its URL."""
    port = free_port()
    argv = [python, str(Path(_bare_app.__file__).resolve()), str(port)]
    with ServerProcess(argv, port=port) as server:
        yield server.url


def measure_at(ctx: Context, url: str, system: str, role: Role) -> list[Cell]:
    cells = []
    for conns in CONCURRENCIES:
        m = ctx.measure_http(url, conns, BODY)
        cells.append(http_cell(m, point(conns), system, role, conns))
    return cells


def run(ctx: Context) -> list[Cell]:
    points = [point(c) for c in CONCURRENCIES]
    s = ctx.settings

    def bare() -> list[Cell]:
        with bare_uvicorn(s.python) as url:
            return measure_at(ctx, url, BARE, Role.LIMIT)

    def framework(system: str, role: Role) -> list[Cell]:
        with serving(MODULES[system], NAME, timeout_s=s.start_timeout_s, python=s.python) as ready:
            ctx.record_startup(system, ready)
            return measure_at(ctx, ready["url"], system, role)

    cells = ctx.attempt(points, BARE, Role.LIMIT, bare)
    cells += ctx.attempt(points, SERVAL, Role.SERVAL, lambda: framework(SERVAL, Role.SERVAL))
    for peer in s.peer_systems((RAY, LITSERVE)):
        cells += ctx.attempt(points, peer, Role.PEER, partial(framework, peer, Role.PEER))
    return cells
