"""The scenarios ``benchmarks/bench.py`` runs, in order, by name.

Each is a module with ``NAME`` and ``run(ctx: Context) -> list[Cell]``: it measures
serval, the peers it supports (those in ``ctx.settings.peers``) and its limit, each
system in a process of its own, and returns one cell per system per scenario point.
Modules are imported only when their scenario runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence

from benchmarks._bench.cells import Cell
from benchmarks.scenarios._context import Context

# name -> "module:function"; the order is the table's.
SCENARIOS: dict[str, str] = {
    "hello": "benchmarks.scenarios.hello:run",
    "handles": "benchmarks.scenarios.handles:run",
    "pipeline": "benchmarks.scenarios.pipeline:run",
    "batching": "benchmarks.scenarios.batching:run",
    "many_models": "benchmarks.scenarios.many_models:run",
    "oip": "benchmarks.scenarios.oip:run",
    "startup": "benchmarks.scenarios.startup:run",
}

Runner = Callable[[Context], list[Cell]]


def select(names: Sequence[str] | str | None) -> list[str]:
    """Scenario names to run, in table order: all for None or "" or "all"; else a
    comma-separated string or a list. Unknown names are an error that lists the known."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if not names or list(names) == ["all"]:
        return list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario(s) {unknown}: choose from {list(SCENARIOS)}")
    return [n for n in SCENARIOS if n in names]


def load(name: str) -> Runner:
    module, _, attr = SCENARIOS[name].partition(":")
    runner: Runner = getattr(importlib.import_module(module), attr)
    return runner
