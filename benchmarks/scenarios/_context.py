"""What every scenario is given: the run's settings, the load generator, and ``attempt``.

Example (in a scenario module)::

    def run(ctx: Context) -> list[Cell]:
        return ctx.attempt(
            ["hello c32"], "Ray Serve", Role.PEER, lambda: measure_ray(ctx)
        )
"""

from __future__ import annotations

import dataclasses
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks._bench.cells import Cell, Role, failed
from benchmarks._bench.children import ROOT, ChildError
from benchmarks._harness.loadgen import LoadGenerator
from benchmarks._harness.stats import Measurement

BARE = "bare uvicorn"
SERVAL = "serval"
RAY = "Ray Serve"
LITSERVE = "LitServe"
MLSERVER = "MLServer"
PEERS = {"ray": RAY, "litserve": LITSERVE, "mlserver": MLSERVER}  # --peers -> system names
MODULES = {
    SERVAL: "serval_apps",
    RAY: "ray_apps",
    LITSERVE: "litserve_apps",
    MLSERVER: "mlserver_apps",
}
# MLServer has a virtualenv of its own (scripts/setup-bench-env.sh says why).
MLSERVER_BIN = str(ROOT / ".venv-mlserver" / "bin" / "mlserver")


@dataclass(frozen=True)
class Settings:
    """How long and against whom; ``--quick`` is ``Settings.quick_run()``."""

    duration_s: float = 5.0  # measured seconds per point
    warmup_s: float = 1.0  # seconds of the same load first, thrown away
    peers: tuple[str, ...] = tuple(PEERS)  # which peers run ("ray", "litserve", "mlserver")
    quick: bool = False
    start_timeout_s: float = 240.0  # a system's process to be ready (Ray on a busy box)
    many_models_requests: int = 20_000
    startup_rounds: int = 3
    python: str = field(default=sys.executable)  # the interpreter every system runs in
    mlserver: str = MLSERVER_BIN  # the mlserver executable (its own virtualenv)

    @classmethod
    def quick_run(cls) -> Settings:
        return cls(
            duration_s=1.0, warmup_s=1.0, quick=True, many_models_requests=1500, startup_rounds=1
        )

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def peer_systems(self, supported: Sequence[str]) -> list[str]:
        """The peers this scenario supports that this run measures, as system names."""
        return [PEERS[p] for p in self.peers if PEERS[p] in supported]


Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass
class Context:
    settings: Settings
    gen: LoadGenerator
    progress: Progress = _quiet
    # Seconds from start to first response of every fresh hello-app process, by system:
    # the startup scenario uses the hello scenario's starts before starting its own.
    startup_samples: dict[str, list[float]] = field(default_factory=dict)

    def record_startup(self, system: str, ready: dict[str, Any]) -> None:
        self.startup_samples.setdefault(system, []).append(float(ready["startup_s"]))

    def attempt(
        self,
        points: Sequence[str],
        system: str,
        role: Role,
        measure: Callable[[], list[Cell]],
    ) -> list[Cell]:
        """``measure()``'s cells; when it fails, one failed cell per point with why."""
        self.progress(f"{system}: {', '.join(points)}")
        try:
            return measure()
        except ChildError as exc:
            error = str(exc)
        except Exception as exc:  # a failing system costs its own cells only
            error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        self.progress(f"{system} failed: {error.splitlines()[0] if error else ''}")
        return [failed(point, system, role, error) for point in points]

    def measure_http(self, url: str, connections: int, body: bytes | None) -> Measurement:
        s = self.settings
        return self.gen.measure(url, connections, s.duration_s, warmup_s=s.warmup_s, body=body)


def http_cell(
    m: Measurement, scenario: str, system: str, role: Role, concurrency: int, unit: str = "req/s"
) -> Cell:
    return Cell(
        scenario,
        system,
        role,
        rps=m.rps,
        p50_ms=m.p50_ms,
        p99_ms=m.p99_ms,
        requests=m.requests,
        errors=m.errors.total,
        unit=unit,
        concurrency=concurrency,
    )
