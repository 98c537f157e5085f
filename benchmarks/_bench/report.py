"""The run's one table (rich), its result file (JSON) and its Markdown summary.

Rows are grouped by scenario point: the limit, serval, serval's reference (the same
work done another way, e.g. the many-models app's own ``/score`` beside its OIP), then
the peers. Every row but serval's carries serval's ratio to it (``serval ÷ this``:
above 1 is better for serval on req/s, below 1 on loads and time). A failed cell shows
``failed`` and its error is printed under the table.
"""

from __future__ import annotations

import datetime
import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks._bench.cells import (
    ROLE_ORDER,
    Cell,
    Ratio,
    Role,
    format_ratio,
    ratios,
    scenario_order,
)
from benchmarks._harness.results import machine_info, save_results

BENCHMARK = "bench"
HEADERS = (
    "system",
    "scenario",
    "throughput",
    "p50 ms",
    "p99 ms",
    "errors",
    "other",
    "serval ÷ this",
)
LEGEND = (
    "serval ÷ this: serval's figure over this row's, same scenario, same run; "
    "throughput: above 1x is better for serval; loads and time: below 1x is."
)


def ordered(cells: Sequence[Cell]) -> list[Cell]:
    """Grouped by scenario point (first-measured order): limit, serval, reference, peers."""
    rank = {s: i for i, s in enumerate(scenario_order(cells))}
    return sorted(cells, key=lambda c: (rank[c.scenario], ROLE_ORDER[c.role]))


def _ms(x: float | None) -> str:
    """Milliseconds: three decimals, or three significant digits below 0.01 ms."""
    if x is None or math.isnan(x):
        return ""
    return f"{x:.3f}" if x >= 0.01 or x == 0 else f"{x:.2g}"


def _throughput(c: Cell) -> str:
    if c.rps is None:
        return ""
    return f"{c.rps:,.0f} {c.unit}" if c.rps < 1e6 else f"{c.rps / 1e6:.2f}M {c.unit}"


def _other(c: Cell) -> str:
    parts = []
    if c.loads is not None:
        parts.append(f"{c.loads:,} loads")
    if c.startup_s is not None:
        parts.append(f"{c.startup_s:.2f} s to first response")
    if c.note:
        parts.append(c.note)
    return "; ".join(parts)


def rows(cells: Sequence[Cell]) -> list[tuple[list[str], bool]]:
    """The table's cells as text, and whether each row ends its scenario's group."""
    by_key = {(r.scenario, r.other): r for r in ratios(cells)}
    out: list[tuple[list[str], bool]] = []
    sorted_cells = ordered(cells)
    for i, c in enumerate(sorted_cells):
        ratio: Ratio | None = by_key.get((c.scenario, c.system))
        last = i + 1 == len(sorted_cells) or sorted_cells[i + 1].scenario != c.scenario
        text = [
            c.system + (" (limit)" if c.role is Role.LIMIT else ""),
            c.scenario,
            _throughput(c),
            _ms(c.p50_ms),
            _ms(c.p99_ms),
            "failed" if c.error else (str(c.errors) if c.requests or c.errors else ""),
            _other(c),
            "" if c.role is Role.SERVAL else (format_ratio(ratio) if ratio else "n/a"),
        ]
        out.append((text, last))
    return out


def table(cells: Sequence[Cell], title: str) -> Table:
    t = Table(title=title)
    for i, name in enumerate(HEADERS):
        t.add_column(name, justify="left" if i in (0, 1, 6) else "right")
    for text, last in rows(cells):
        t.add_row(*text, end_section=last)
    return t


def failures(cells: Sequence[Cell]) -> list[str]:
    """One line per failed cell: system, scenario and the error's first line."""
    return [
        f"{c.system} / {c.scenario}: {c.error.strip().splitlines()[0]}"
        for c in ordered(cells)
        if c.error
    ]


def ceiling_line(cells: Sequence[Cell], loadgen: str) -> str:
    """The generator's proven rate: bare uvicorn at the most connections measured."""
    bare = [c for c in cells if c.system == "bare uvicorn" and c.ok and c.rps]
    if not bare:
        return "load generator ceiling: not measured (bare uvicorn did not run)"
    top = max(bare, key=lambda c: c.concurrency)
    return (
        f"load generator ceiling: >= {top.rps or 0:,.0f} req/s ({loadgen} sustained that "
        f"against bare uvicorn at {top.concurrency} connections in this run)"
    )


def print_report(cells: Sequence[Cell], title: str, lines: Sequence[str]) -> None:
    console = Console(width=max(140, shutil.get_terminal_size().columns))
    console.print(table(cells, title))
    console.print(LEGEND)
    for line in lines:
        console.print(line, highlight=False, markup=False)
    for line in failures(cells):
        console.print("FAILED " + line, style="red", highlight=False, markup=False)


def save(
    cells: Sequence[Cell], settings: dict[str, Any], extra: dict[str, Any], path: Path | None
) -> Path:
    """The result file: the harness's schema (rows with req/s) plus every cell, ratio
    and error (``cells``, ``ratios``)."""
    rows_ = [r for c in cells if (r := c.to_result()) is not None]
    return save_results(
        rows_,
        benchmark=BENCHMARK,
        settings=settings,
        extra={
            "cells": [c.to_json() for c in cells],
            "ratios": [
                {"scenario": r.scenario, "other": r.other, "metric": r.metric, "value": r.value}
                for r in ratios(cells)
            ],
            **extra,
        },
        path=path,
    )


def markdown(cells: Sequence[Cell], *, command: str, lines: Sequence[str], chart: str) -> str:
    """The summary committed next to the chart: date, machine, command, table."""
    m = machine_info()
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        "# `make bench`: latest run",
        "",
        f"- date: {date}",
        f"- command: `{command}`",
        f"- machine: {m['cpu_model']}, {m['cpu_count']} cores, Python {m['python']}, "
        f"{m['platform']}; load average {m['loadavg_1m']} at the end",
        f"- versions: {versions}",
        "",
        f"![chart]({chart})",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join("---" if i in (0, 1, 6) else "---:" for i in range(len(HEADERS))) + "|",
    ]
    out += ["| " + " | ".join(t.replace("|", "/") for t in text) + " |" for text, _ in rows(cells)]
    out += ["", LEGEND, ""]
    out += [f"- {line}" for line in lines]
    out += [f"- FAILED {line}" for line in failures(cells)]
    return "\n".join(out) + "\n"
