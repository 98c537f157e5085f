"""What one system measured in one scenario, and serval's ratio to every other system.

A ``Cell`` is a table row: a system (serval, a peer, or the limit: the same work done
without any serving framework) at one scenario point, such as ``hello c32``. Its figures
are None when the system failed there; ``error`` then says why, and the run goes on.

Each cell names the figure serval is compared on (``compare_on``): ``rps`` (req/s,
items/s or calls/s: higher is better), ``loads`` (model loads on the many-models trace)
or ``startup_s`` (seconds from ``run`` to the first successful response; for both,
lower is better). The ratio is always serval's figure divided by the other's.

Example::

    cells = [Cell("hello c32", "serval", Role.SERVAL, rps=7000.0),
             Cell("hello c32", "bare uvicorn", Role.LIMIT, rps=20000.0)]
    ratios(cells)  # -> [Ratio("hello c32", "bare uvicorn", "rps", 0.35)]
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks._harness.stats import Result

SERVAL = "serval"
METRICS = ("rps", "loads", "startup_s")
LOWER_IS_BETTER = frozenset({"loads", "startup_s"})


class Role(str, enum.Enum):
    SERVAL = "serval"  # the system under test
    PEER = "peer"  # what a user would pick instead (Ray Serve, LitServe)
    LIMIT = "limit"  # the same work with no framework: what nothing can beat
    REFERENCE = "reference"  # serval doing the same work another way (its own /score)


ROLE_ORDER = {Role.LIMIT: 0, Role.SERVAL: 1, Role.REFERENCE: 2, Role.PEER: 3}  # rows, bars


@dataclass(frozen=True)
class Cell:
    scenario: str  # the scenario point, e.g. "hello c32"
    system: str
    role: Role
    rps: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    requests: int = 0
    errors: int = 0  # failed requests (figures stay comparable only when 0)
    loads: int | None = None
    startup_s: float | None = None
    compare_on: str = "rps"
    unit: str = "req/s"  # what rps counts: req/s, items/s, calls/s
    concurrency: int = 0  # connections or callers; 0: not a load test
    error: str = ""  # why the figures are missing
    note: str = ""

    def __post_init__(self) -> None:
        if self.compare_on not in METRICS:
            raise ValueError(f"compare_on={self.compare_on!r}: expected one of {METRICS}")

    @property
    def ok(self) -> bool:
        return not self.error

    def figure(self, metric: str) -> float | None:
        value: float | int | None = getattr(self, metric)
        return None if value is None else float(value)

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "role": self.role.value}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Cell:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{**{k: v for k, v in doc.items() if k in names}, "role": Role(doc["role"])})

    def to_result(self) -> Result | None:
        """The harness's row (for the shared result-file schema); None without req/s."""
        if self.rps is None or self.error:
            return None
        return Result(
            system=self.system,
            scenario=self.scenario,
            concurrency=self.concurrency,
            requests=self.requests,
            errors=self.errors,
            rps=round(self.rps, 1),
            p50_ms=round(self.p50_ms or 0.0, 4),
            p99_ms=round(self.p99_ms or 0.0, 4),
        )


def failed(scenario: str, system: str, role: Role, error: str, **fields: Any) -> Cell:
    """A cell whose system could not be measured: the error goes in the table."""
    return Cell(scenario, system, role, error=error or "failed", **fields)


@dataclass(frozen=True)
class Ratio:
    """serval's figure divided by another system's, same scenario point, same run."""

    scenario: str
    other: str
    metric: str
    value: float  # NaN when either side has no figure

    @property
    def lower_is_better(self) -> bool:
        return self.metric in LOWER_IS_BETTER


def ratios(cells: Iterable[Cell]) -> list[Ratio]:
    """serval against every other cell of its scenario point, on the other's metric."""
    rows = list(cells)
    ours = {c.scenario: c for c in rows if c.role is Role.SERVAL}
    out: list[Ratio] = []
    for c in rows:
        mine = ours.get(c.scenario)
        if c.role is Role.SERVAL or mine is None:
            continue
        out.append(Ratio(c.scenario, c.system, c.compare_on, _ratio(mine, c, c.compare_on)))
    return out


def _ratio(mine: Cell, other: Cell, metric: str) -> float:
    if not (mine.ok and other.ok):
        return math.nan
    num, den = mine.figure(metric), other.figure(metric)
    if num is None or den is None or den <= 0:
        return math.nan
    return num / den


def format_ratio(r: Ratio) -> str:
    """``2.31x``, ``1.08x loads``, ``0.25x time``, ``0.0015x``; ``n/a`` without figures."""
    if math.isnan(r.value):
        return "n/a"
    label = {"rps": "", "loads": " loads", "startup_s": " time"}[r.metric]
    number = f"{r.value:.2f}" if r.value >= 0.1 else f"{r.value:.2g}"
    return f"{number}x{label}"


def scenario_order(cells: Sequence[Cell]) -> list[str]:
    """Scenario points in the order they were first measured."""
    return list(dict.fromkeys(c.scenario for c in cells))
