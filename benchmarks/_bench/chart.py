"""The run as a PNG: one panel per scenario point and figure, serval vs peers vs limit.

Bars are horizontal, one per system, coloured by role (serval, its reference, peer,
limit); a panel whose figures span more than ``LOG_SPAN`` times goes to a log scale. A
system that failed at a point gets a ``failed`` label instead of a bar.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from benchmarks._bench.cells import ROLE_ORDER, Cell, Role, scenario_order

LOG_SPAN = 20.0
COLORS = {
    Role.SERVAL: "#2b8a3e",
    Role.REFERENCE: "#8ce99a",
    Role.PEER: "#868e96",
    Role.LIMIT: "#1c7ed6",
}
TITLES = {"loads": "{point}: model loads", "startup_s": "{point}: run to first response"}
LABELS = {
    "rps": "",
    "loads": "model loads (lower is better)",
    "startup_s": "seconds (lower is better)",
}


def panels(cells: Sequence[Cell]) -> list[tuple[str, str, list[Cell]]]:
    """(scenario point, metric, its cells) for every metric some cell of the point has."""
    out = []
    for point in scenario_order(cells):
        group = [c for c in cells if c.scenario == point]
        for metric in ("rps", "loads", "startup_s"):
            if any(c.figure(metric) is not None for c in group):
                out.append((point, metric, [c for c in group if c.figure(metric) or c.error]))
    return out


def _xlabel(metric: str, group: Sequence[Cell]) -> str:
    if metric == "rps":
        units = {c.unit for c in group if c.rps is not None}
        return f"{'/'.join(sorted(units))} (higher is better)"
    return LABELS[metric]


def draw(cells: Sequence[Cell], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = panels(cells)
    cols = 3
    nrows = max(1, math.ceil(len(parts) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(15, 2.6 * nrows + 0.8), squeeze=False)
    for ax, (point, metric, group) in zip(axes.flat, parts, strict=False):
        order = sorted(group, key=lambda c: ROLE_ORDER[c.role])
        names = [c.system for c in order]
        values = [c.figure(metric) or 0.0 for c in order]
        ys = range(len(order))
        ax.barh(ys, values, color=[COLORS[c.role] for c in order])
        ax.set_yticks(list(ys), names)
        ax.invert_yaxis()
        positive = [v for v in values if v > 0]
        if positive and max(positive) / min(positive) > LOG_SPAN:
            ax.set_xscale("log")
        for y, c, v in zip(ys, order, values, strict=True):
            label = "failed" if c.error else _short(v)
            ax.text(v if v > 0 else 0, y, f" {label}", va="center", fontsize=8)
        ax.set_title(TITLES.get(metric, "{point}").format(point=point))
        ax.set_xlabel(_xlabel(metric, group), fontsize=8)
        ax.margins(x=0.25)
    for ax in list(axes.flat)[len(parts) :]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _short(v: float) -> str:
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e4:
        return f"{v / 1e3:.0f}k"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"
