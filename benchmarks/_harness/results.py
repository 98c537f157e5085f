"""Result files (JSON, with the machine they were measured on) and ``rich`` tables.

A file in ``benchmarks/results/`` is named ``<benchmark>-<UTC timestamp>.json``::

    {"schema_version": 1, "benchmark": "http_overhead", "created_utc": "...",
     "machine": {"cpu_model": ..., "cpu_count": 2, "python": "3.11.7",
                 "platform": ..., "loadavg_1m": 0.3,
                 "versions": {"serval": ..., "uvicorn": ..., "ray": null}},
     "settings": {...}, "results": [{"system": ..., "rps": ..., ...}], ...extra}

Example::

    path = save_results(results, benchmark="http_overhead", settings={"duration_s": 5})
    doc, rows = load_results(path)
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import platform
import shutil
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks._harness.stats import (
    Comparison,
    Result,
    format_delta_ms,
    format_percent,
    format_ratio,
)

SCHEMA_VERSION = 1
RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"
VERSIONED = ("serval", "uvicorn", "uvloop", "httptools", "ray", "litserve", "numpy", "scikit-learn")


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_1m": round(os.getloadavg()[0], 2),  # when saved: other work during the run
        "versions": {name: package_version(name) for name in VERSIONED},
    }


def result_path(benchmark: str, directory: Path = RESULTS_DIR) -> Path:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return directory / f"{benchmark}-{stamp}.json"


def save_results(
    results: Iterable[Result],
    *,
    benchmark: str,
    settings: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    path: Path | None = None,
) -> Path:
    """Write the results file (atomically) and return its path."""
    path = path or result_path(benchmark)
    doc = {
        "schema_version": SCHEMA_VERSION,
        "benchmark": benchmark,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "settings": settings or {},
        "results": [dataclasses.asdict(r) for r in results],
        **(extra or {}),
    }
    doc = _json_safe(doc)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)
    return path


def _json_safe(value: Any) -> Any:
    """NaN and infinities (a ratio against a zero baseline) become null: strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def load_results(path: Path) -> tuple[dict[str, Any], list[Result]]:
    """The whole document and its rows as ``Result``s."""
    doc: dict[str, Any] = json.loads(path.read_text())
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{path}: schema_version {doc.get('schema_version')!r} is not 1")
    return doc, [Result(**row) for row in doc["results"]]


def results_table(results: Sequence[Result], title: str = "Results") -> Table:
    """One row per result; the scenario column only when rows differ in it."""
    scenarios = {r.scenario for r in results}
    with_scenario = len(scenarios) > 1
    if not with_scenario and scenarios:
        title = f"{title} ({scenarios.pop()})"
    table = Table(title=title)
    table.add_column("system")
    if with_scenario:
        table.add_column("scenario")
    for name in ("conns", "req/s", "p50 ms", "p99 ms", "requests", "errors"):
        table.add_column(name, justify="right")
    for r in results:
        cells = [
            str(r.concurrency),
            f"{r.rps:,.0f}",
            f"{r.p50_ms:.3f}",
            f"{r.p99_ms:.3f}",
            f"{r.requests:,}",
            str(r.errors),
        ]
        table.add_row(r.system, *([r.scenario] if with_scenario else []), *cells)
    return table


def comparisons_table(comparisons: Sequence[Comparison], title: str = "Ratios") -> Table:
    """Each system against its baseline: req/s as a share of it, latencies as Δ and ratio."""
    table = Table(title=title)
    table.add_column("system")
    table.add_column("vs")
    for name in ("conns", "req/s", "p50 Δ", "p50", "p99"):
        table.add_column(name, justify="right")
    for c in comparisons:
        table.add_row(
            c.system,
            c.baseline,
            str(c.concurrency),
            format_percent(c.rps_ratio),
            format_delta_ms(c.p50_delta_ms),
            format_ratio(c.p50_ratio),
            format_ratio(c.p99_ratio),
        )
    return table


def print_tables(*tables: Table, console: Console | None = None) -> None:
    # Wide enough for both tables when output goes to a file or a pipe (rich's default: 80).
    console = console or Console(width=max(100, shutil.get_terminal_size().columns))
    for table in tables:
        console.print(table)
