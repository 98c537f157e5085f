"""`make bench`: serval against its peers and the physical limits, in one run, one table.

Every scenario (benchmarks/scenarios/) runs every system in the same run, each in a
process of its own: serval, the peers (Ray Serve configured as its docs recommend for
throughput, LitServe where it applies, MLServer for the Open Inference Protocol) and
the limit (the same work without a serving framework). One table follows: req/s (or
items/s, calls/s), p50, p99, errors, and serval's ratio to each peer and to the limit;
then the load generator's ceiling against bare uvicorn. Results go to
``benchmarks/results/``: a JSON file with machine info, a PNG chart (one panel per
scenario) and a Markdown summary (``latest.md``; with a chart ``bench.png`` when every
scenario ran, ``latest-<names>.md`` and ``bench-<names>.png`` for a subset).

Run (in the peers' virtualenv, ``make bench-env``):
    python benchmarks/bench.py [--quick] [--scenario hello,oip] [--peers ray,litserve,mlserver]
Exit status 1 when serval itself failed in a scenario (a peer failing is reported in
its cells and does not fail the run).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import os
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from benchmarks import scenarios
from benchmarks._bench import chart, report
from benchmarks._bench.cells import Cell, Role
from benchmarks._harness.loadgen import KINDS, LoadGenerator
from benchmarks._harness.results import RESULTS_DIR
from benchmarks.scenarios._context import BARE, PEERS, Context, Settings, http_cell

BUSY_LOAD = 1.0  # 1-minute load average above which ratios get noisy


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="1 s points, small traces (< 3 min)")
    p.add_argument(
        "--scenario",
        default=os.environ.get("SCENARIO", ""),
        help=f"comma-separated, default all: {','.join(scenarios.SCENARIOS)}",
    )
    p.add_argument(
        "--peers", default=",".join(PEERS), help="comma-separated peers, or 'none' (serval only)"
    )
    p.add_argument("--duration", type=float, help="measured seconds per point (default 5)")
    p.add_argument("--warmup", type=float, help="warm-up seconds per point (default 1)")
    p.add_argument("--mm-requests", type=int, help="many-models trace length (default 20000)")
    p.add_argument("--mlserver", help="the mlserver executable (default .venv-mlserver/bin/)")
    p.add_argument("--loadgen", choices=KINDS, default="auto", help="default: wrk if installed")
    p.add_argument("--json", type=Path, help="results file (default: benchmarks/results/)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="chart and summary directory")
    p.add_argument("--no-chart", action="store_true", help="skip the PNG (no matplotlib)")
    return p.parse_args(argv)


def parse_peers(text: str) -> tuple[str, ...]:
    """``"ray,litserve"`` -> ``("ray", "litserve")``; ``"none"`` or "" -> ``()``."""
    names = [n.strip() for n in text.split(",") if n.strip() and n.strip() != "none"]
    unknown = [n for n in names if n not in PEERS]
    if unknown:
        raise ValueError(f"unknown peer(s) {unknown}: choose from {list(PEERS)} or 'none'")
    return tuple(names)


def settings_from(args: argparse.Namespace) -> Settings:
    base = Settings.quick_run() if args.quick else Settings()
    changes: dict[str, Any] = {"peers": parse_peers(args.peers)}
    if args.duration is not None:
        changes["duration_s"] = args.duration
    if args.warmup is not None:
        changes["warmup_s"] = args.warmup
    if args.mm_requests is not None:
        changes["many_models_requests"] = args.mm_requests
    if args.mlserver:
        changes["mlserver"] = args.mlserver
    return base.replace(**changes)


def run(names: Sequence[str], ctx: Context) -> list[Cell]:
    """Every selected scenario in table order; a scenario that raises costs its cells."""
    cells: list[Cell] = []
    for name in names:
        started = time.monotonic()
        ctx.progress(f"== {name}")
        cells += scenarios.load(name)(ctx)
        ctx.progress(f"== {name}: {time.monotonic() - started:.0f}s")
    return cells


def ceiling_cells(names: Sequence[str], ctx: Context) -> list[Cell]:
    """Bare uvicorn at 32 connections, when no hello scenario measured it but the load
    generator drove HTTP scenarios: the ceiling line needs it."""
    if "hello" in names or not {"pipeline", "batching", "oip"} & set(names):
        return []
    from benchmarks.scenarios.hello import bare_uvicorn
    from benchmarks.systems._handlers import BODY

    with bare_uvicorn(ctx.settings.python) as url:
        m = ctx.measure_http(url, 32, BODY)
    return [http_cell(m, "loadgen ceiling", BARE, Role.LIMIT, 32)]


def outputs(names: Sequence[str], out: Path) -> tuple[Path, Path]:
    """The chart and summary paths: bench.png and latest.md for a full run."""
    if list(names) == list(scenarios.SCENARIOS):
        return out / "bench.png", out / "latest.md"
    tag = "-".join(names)
    return out / f"bench-{tag}.png", out / f"latest-{tag}.md"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        names = scenarios.select(args.scenario)
        settings = settings_from(args)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    gen = LoadGenerator.pick(args.loadgen)
    load = os.getloadavg()[0]
    print(
        f"scenarios: {', '.join(names)}; peers: {', '.join(settings.peers) or 'none'}; "
        f"{settings.duration_s:g}s per point after {settings.warmup_s:g}s warm-up; "
        f"load generator: {gen.describe()}",
        flush=True,
    )
    if load > BUSY_LOAD:
        print(f"warning: load average {load:.2f} at the start: other work will skew ratios")
    ctx = Context(settings, gen, lambda msg: print(f"  {msg}", file=sys.stderr, flush=True))
    started = time.monotonic()
    cells = run(names, ctx)
    ceiling = report.ceiling_line(cells + ceiling_cells(names, ctx), gen.describe())
    elapsed = time.monotonic() - started
    mode = "quick" if settings.quick else "full"
    title = f"serval vs peers vs limits ({mode} run, {elapsed:.0f}s)"
    lines = [ceiling]
    report.print_report(cells, title, lines)
    chart_path, summary_path = outputs(names, args.out)
    saved = report.save(
        cells,
        {**asdict(settings), "scenarios": list(names), "loadgen": gen.describe()},
        {"ceiling": ceiling, "elapsed_s": round(elapsed, 1), "loadavg_1m_at_start": load},
        args.json,
    )
    print(f"saved {saved}")
    if not args.no_chart:
        chart.draw(cells, chart_path, title)
        command = "python benchmarks/bench.py " + " ".join(sys.argv[1:] if argv is None else argv)
        summary_path.write_text(
            report.markdown(cells, command=command.strip(), lines=lines, chart=chart_path.name)
        )
        print(f"chart {chart_path}; summary {summary_path}")
    return 1 if any(c.error for c in cells if c.role is Role.SERVAL) else 0


if __name__ == "__main__":
    sys.exit(main())
