"""What serval's HTTP path costs: a hello-world deployment against the same bare handler.

One run measures, side by side (interleaved per concurrency), at 1 and 32 keep-alive
connections:

- ``bare uvicorn``: ``_bare_app.py``, the handler as a plain ASGI app on uvicorn (the limit);
- ``serval``: the handler as a deployment, 1 replica, default options
  (``max_ongoing_requests=5``, as in Ray Serve);
- ``serval mor=100``: the same with ``max_ongoing_requests=100``, the documented
  throughput setting;
- ``metrics on`` / ``metrics off``: ``serval mor=100`` again on two more instances,
  each in a process of its own (``_serval_hello.py``), identical but for
  ``SERVAL_METRICS`` (1 and 0), measured one right after the other in each round: the
  cost of metrics on the request path, the median over rounds of on ÷ off req/s
  (target >= 0.95), and beside it the CPU each instance's processes spent per request
  (steadier than req/s on a shared VM). With 2+ rounds the instances are started
  again, in the other order, half-way (the first started measured ~5% slower in an
  A/A run: ``--systems 'metrics on,metrics off' --rounds 8`` is the run to quote).

It prints req/s, p50 and p99, the ratios against bare uvicorn, PASS/MISS against the
targets (serval >= 35% of bare uvicorn's req/s at 32 connections; serval's p50 at 1
connection <= bare uvicorn's + 0.3 ms), and the load generator's ceiling (bare uvicorn at
32 connections: the generator drove at least that). Results go to ``benchmarks/results/``.

With ``--runtime ray`` serval runs on a Ray cluster, and Ray Serve (``ray serve``, from the
peers' virtualenv ``.venv-bench``, its throughput settings: ``max_ongoing_requests=100``,
``RAY_SERVE_THROUGHPUT_OPTIMIZED=1``) serves the same hello world on the same cluster
(a new local one started by the Ray Serve process, or ``--ray-address``), measured in the
same run; the targets against it: serval >= 5x Ray Serve's req/s at 32 connections, and
serval's p50 at 1 connection <= 1/3 of Ray Serve's.

Run: python benchmarks/http_overhead.py [--quick] [--duration S] [--rounds N] [--json PATH]
(``--rounds 3`` repeats the interleaved sequence and reports per-point medians: use it
when the machine is busy.)
Exit status 1 when any request failed (the figures are then not comparable).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import contextlib
import http.client
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request

import serval as serve
from benchmarks import _bare_app
from benchmarks._harness.cputime import tree_cpu_s
from benchmarks._harness.loadgen import KINDS, LoadGenerator
from benchmarks._harness.procs import ServerProcess, free_port
from benchmarks._harness.results import (
    comparisons_table,
    print_tables,
    results_table,
    save_results,
)
from benchmarks._harness.stats import (
    Comparison,
    Result,
    compare,
    format_delta_ms,
    format_percent,
    median_results,
)

BENCHMARK = "http_overhead"
SCENARIO = "hello-world"
BARE = "bare uvicorn"
SERVAL = "serval"
SERVAL_100 = "serval mor=100"
METRICS_ON = "metrics on"
METRICS_OFF = "metrics off"
RAY_SERVE = "ray serve"
SYSTEMS: dict[str, dict[str, Any] | None] = {  # name -> deployment options (None: bare)
    BARE: None,
    SERVAL: {},
    SERVAL_100: {"max_ongoing_requests": 100},
    METRICS_ON: {"max_ongoing_requests": 100},  # on an instance of its own
    METRICS_OFF: {"max_ongoing_requests": 100},  # on an instance of its own
}
OWN_INSTANCE = {METRICS_ON: "1", METRICS_OFF: "0"}  # system -> its SERVAL_METRICS
METRICS_RATIO_TARGET = 0.95  # metrics on req/s >= 95% of metrics off's
PEERS_PYTHON = Path(__file__).resolve().parent.parent / ".venv-bench" / "bin" / "python"
RAY_SERVE_APP = Path(__file__).resolve().parent / "peers" / "ray_serve_hello.py"
RAY_RPS_TARGET = 5.0  # serval req/s >= 5x Ray Serve's at RPS_AT connections (--runtime ray)
RAY_P50_TARGET = 1 / 3  # serval p50 <= 1/3 of Ray Serve's at P50_AT connections
PEER_START_TIMEOUT_S = 300.0
CONCURRENCIES = (1, 32)
RPS_TARGET = 0.35  # serval req/s >= 35% of bare uvicorn's at RPS_AT connections
RPS_AT = 32
P50_TARGET_MS = 0.3  # serval p50 <= bare uvicorn's + 0.3 ms at P50_AT connections
P50_AT = 1
APP_NAME = "hello"
BUSY_LOAD = 1.0  # 1-minute load average above which the machine is not idle enough

Progress = Callable[[str], None]


@serve.deployment
def hello(request: Request) -> str:
    return _bare_app.hello()


# -- the systems under test ---------------------------------------------------------------


@contextlib.contextmanager
def bare_server() -> Iterator[str]:
    port = free_port()
    argv = [sys.executable, str(Path(_bare_app.__file__).resolve()), str(port)]
    with ServerProcess(argv, port=port) as server:
        yield server.url


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def serval_own_instance(metrics: str, max_ongoing_requests: int = 100) -> Iterator[tuple[str, int]]:
    """Another serval, started with ``SERVAL_METRICS=metrics`` in a process of its own
    (``_serval_hello.py``); yields its URL and that process' pid (serval's processes are
    its descendants) once it answers."""
    home = tempfile.mkdtemp(prefix="svn", dir="/tmp")
    port = free_port()
    script = Path(__file__).resolve().parent / "_serval_hello.py"
    argv = [sys.executable, str(script), str(port), str(max_ongoing_requests)]
    try:
        with _environ(SERVAL_HOME=home, SERVAL_METRICS=metrics, SERVAL_LOG_LEVEL="WARNING"):
            server = ServerProcess(argv, port=port, start_timeout_s=60)
            server.start()
        try:
            wait_answer(server.url, 60)
            yield server.url, server.pid
        finally:
            server.stop(timeout_s=30)
    finally:
        shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def serval_instance(runtime: str = "local", ray_address: str | None = None) -> Iterator[str]:
    """A serval of its own (short temp SERVAL_HOME, quiet logs); yields the proxy's URL.

    ``runtime="ray"`` places the replica with Ray: on the cluster at ``ray_address``, or
    on a new local Ray instance when it is None.
    """
    check_runtime(runtime)
    home = tempfile.mkdtemp(prefix="svb", dir="/tmp")
    port = free_port()
    try:
        with _environ(SERVAL_HOME=home, SERVAL_LOG_LEVEL="WARNING"):
            try:
                address = ray_address if runtime == "ray" else None
                serve.start(http_options={"port": port}, runtime=runtime, address=address)
                yield f"http://127.0.0.1:{port}/"
            finally:
                serve.shutdown()
    finally:
        shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def ray_serve_peer(ray_address: str | None, progress: Progress) -> Iterator[tuple[str, str]]:
    """Ray Serve's hello world in the peers' virtualenv; yields (its URL, the GCS address
    of the Ray cluster it runs on, which serval then joins)."""
    if not PEERS_PYTHON.exists():
        raise SystemExit(
            f"--runtime ray compares with Ray Serve from {PEERS_PYTHON}: make bench-env"
        )
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="svr", dir="/tmp")
    address_file = os.path.join(workdir, "gcs")
    argv = [str(PEERS_PYTHON), str(RAY_SERVE_APP), "--port", str(port)]
    argv += ["--address-file", address_file, "--address", ray_address or ""]
    progress("ray serve: starting" + ("" if ray_address else " (and a local Ray cluster)"))
    server = ServerProcess(argv, port=port, start_timeout_s=PEER_START_TIMEOUT_S)
    try:
        server.start()
        url = server.url
        wait_answer(url, PEER_START_TIMEOUT_S)
        with open(address_file) as f:
            gcs = f.read().strip()
        yield url, gcs
    finally:
        server.stop(timeout_s=60)
        shutil.rmtree(workdir, ignore_errors=True)


def wait_answer(url: str, timeout_s: float) -> None:
    """Until ``url`` answers hello() (a server may listen before its app is deployed)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            check_answer(url)
            return
        except (OSError, RuntimeError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def check_runtime(runtime: str) -> None:
    from serval.runtime import RUNTIMES

    if runtime not in RUNTIMES:
        raise SystemExit(
            f"--runtime {runtime}: not available yet in this serval "
            f"(serval.runtime.RUNTIMES has {sorted(RUNTIMES)})"
        )


class HelloApp:
    """The hello app on one serval instance, at ``/``, redeployed when the options change."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.system: str | None = None  # whose options are deployed now

    def serve(self, system: str, progress: Progress) -> str:
        if system != self.system:
            progress(f"{system}: deploying")
            if self.system is not None:
                serve.delete(APP_NAME)
            options = SYSTEMS[system] or {}
            serve.run(hello.options(**options).bind(), name=APP_NAME, route_prefix="/")
            self.system = system
        return self.url


def check_answer(url: str) -> None:
    """One request before measuring: a wrong answer would be measured as fast errors."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        conn.request("GET", parts.path or "/")
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    if resp.status != 200 or body != _bare_app.hello().encode():
        raise RuntimeError(f"GET {url} answered {resp.status} {body[:200]!r}, not hello()")


# -- measuring ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    duration_s: float = 5.0
    warmup_s: float = 1.0
    concurrencies: Sequence[int] = CONCURRENCIES
    systems: Sequence[str] = tuple(SYSTEMS)
    runtime: str = "local"
    ray_address: str | None = None
    rounds: int = 1


def measure_point(system: str, url: str, conns: int, plan: Plan, gen: LoadGenerator) -> Result:
    check_answer(url)
    m = gen.measure(url, conns, plan.duration_s, warmup_s=plan.warmup_s)
    return Result.from_measurement(m, system=system, scenario=SCENARIO, concurrency=conns)


def measure_with_cpu(
    system: str, url: str, pid: int, conns: int, plan: Plan, gen: LoadGenerator
) -> tuple[Result, float]:
    """:func:`measure_point`, and the CPU the server's process tree spent per request
    (microseconds) while measured (the warm-up runs apart, before)."""
    check_answer(url)
    if plan.warmup_s > 0:
        gen.measure(url, conns, plan.warmup_s, warmup_s=0)
    before = tree_cpu_s(pid)
    m = gen.measure(url, conns, plan.duration_s, warmup_s=0)
    spent = tree_cpu_s(pid) - before
    result = Result.from_measurement(m, system=system, scenario=SCENARIO, concurrency=conns)
    return result, (1e6 * spent / m.requests if m.requests else 0.0)


def run_benchmark(
    plan: Plan,
    gen: LoadGenerator,
    progress: Progress = lambda _: None,
    cpu: list[CpuPoint] | None = None,
) -> list[list[Result]]:
    """``plan.rounds`` rounds of every system at every concurrency; one list per round.
    The metrics on/off instances' CPU per request goes to ``cpu``.

    Interleaved so that the rows compared are measured close in time: per concurrency,
    bare uvicorn, then each serval variant (the one deployed now first, to save a
    redeploy). Both servers stay up throughout; the idle one costs well under 1% CPU.
    """
    unknown = set(plan.systems) - {*SYSTEMS, RAY_SERVE}
    if unknown:
        raise ValueError(f"unknown systems {sorted(unknown)}; known: {[*SYSTEMS, RAY_SERVE]}")
    if RAY_SERVE in plan.systems and plan.runtime != "ray":
        raise ValueError(f"{RAY_SERVE!r} is measured with --runtime ray only")
    rank = {s: i for i, s in enumerate(plan.systems)}
    rounds: list[list[Result]] = []
    with contextlib.ExitStack() as stack:
        bare_url = stack.enter_context(bare_server()) if BARE in plan.systems else ""
        ray_address, peer_url = plan.ray_address, ""
        if RAY_SERVE in plan.systems:  # first: it starts the Ray cluster serval joins
            peer_url, ray_address = stack.enter_context(ray_serve_peer(ray_address, progress))
        on_serval = any(SYSTEMS.get(s) is not None and s not in OWN_INSTANCE for s in plan.systems)
        app = HelloApp(
            stack.enter_context(serval_instance(plan.runtime, ray_address)) if on_serval else ""
        )
        fixed = {BARE: bare_url, RAY_SERVE: peer_url}
        pids: dict[str, int] = {}
        own = [s for s in OWN_INSTANCE if s in plan.systems]
        # Two blocks of rounds when both metrics instances run, started in one order for
        # the first and the other for the second: an A/A run (both with metrics) showed
        # the instance started first ~5% slower for the whole run, which a comparison of
        # two instances must not take for the cost of metrics.
        blocks = 2 if len(own) == 2 and plan.rounds >= 2 else 1
        n = 0
        for block in range(blocks):
            with contextlib.ExitStack() as instances:
                for system in own if block == 0 else own[::-1]:
                    fixed[system], pids[system] = instances.enter_context(
                        serval_own_instance(OWN_INSTANCE[system])
                    )
                block_rounds = (plan.rounds + 1) // 2 if block == 0 and blocks == 2 else None
                while n < plan.rounds and (block_rounds is None or n < block_rounds):
                    rounds.append(_one_round(n, plan, gen, app, fixed, pids, rank, progress, cpu))
                    n += 1
    return rounds


def _one_round(
    n: int,
    plan: Plan,
    gen: LoadGenerator,
    app: HelloApp,
    fixed: dict[str, str],
    pids: dict[str, int],
    rank: dict[str, int],
    progress: Progress,
    cpu: list[CpuPoint] | None,
) -> list[Result]:
    """Round ``n``: every system at every concurrency, interleaved."""
    results: list[Result] = []
    for conns in plan.concurrencies:
        order = sorted(plan.systems, key=lambda s: (s not in fixed, s != app.system))
        order = _metrics_pair_adjacent(order, swap=n % 2 == 1)
        for system in order:
            url = fixed[system] if system in fixed else app.serve(system, progress)
            progress(f"round {n + 1}/{plan.rounds}: {system}, {conns} connection(s)")
            if system in pids:
                result, us = measure_with_cpu(system, url, pids[system], conns, plan, gen)
                if cpu is not None:
                    cpu.append(CpuPoint(n, system, conns, round(us, 1)))
            else:
                result = measure_point(system, url, conns, plan, gen)
            results.append(result)
    results.sort(key=lambda r: (rank[r.system], plan.concurrencies.index(r.concurrency)))
    return results


def _metrics_pair_adjacent(order: list[str], swap: bool) -> list[str]:
    """Measure metrics on and off one right after the other (off first, or on first
    when ``swap``: every other round), so that load from elsewhere drifting during a
    run weighs on both sides of the ratio alike."""
    if METRICS_ON not in order or METRICS_OFF not in order:
        return order
    rest = [s for s in order if s not in OWN_INSTANCE]
    pair = [METRICS_ON, METRICS_OFF] if swap else [METRICS_OFF, METRICS_ON]
    return [*rest, *pair]


# -- judging ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    system: str
    target: str
    measured: str
    passed: bool

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'MISS'}  {self.system}: {self.target}: {self.measured}"


def verdicts(comparisons: Sequence[Comparison]) -> list[Verdict]:
    out = []
    for c in comparisons:
        if c.concurrency == RPS_AT:
            out.append(
                Verdict(
                    c.system,
                    f"req/s >= {RPS_TARGET:.0%} of {c.baseline} at {RPS_AT} connections",
                    format_percent(c.rps_ratio),
                    c.rps_ratio >= RPS_TARGET,
                )
            )
        if c.concurrency == P50_AT:
            out.append(
                Verdict(
                    c.system,
                    f"p50 <= {c.baseline} + {P50_TARGET_MS} ms at {P50_AT} connection",
                    format_delta_ms(c.p50_delta_ms),
                    c.p50_delta_ms <= P50_TARGET_MS,
                )
            )
    return out


@dataclass(frozen=True)
class CpuPoint:
    """The CPU a metrics on/off instance spent per request in one round's point."""

    round: int
    system: str
    concurrency: int
    us_per_request: float


def metrics_verdicts(
    rounds: Sequence[Sequence[Result]], cpu: Sequence[CpuPoint] = ()
) -> list[Verdict]:
    """serval with metrics against the same serval without them, same run: the median
    over rounds of each round's on ÷ off req/s (the two measured one right after the
    other), and beside it the CPU per request of each (median over rounds)."""
    out = []
    for conns in sorted({r.concurrency for rows in rounds for r in rows}):
        ratios = []
        for rows in rounds:
            on = [r for r in rows if r.system == METRICS_ON and r.concurrency == conns]
            off = [r for r in rows if r.system == METRICS_OFF and r.concurrency == conns]
            if on and off and off[0].rps:
                ratios.append(on[0].rps / off[0].rps)
        if not ratios:
            continue
        ratio = statistics.median(ratios)
        measured = f"{ratio:.3f} (median of {len(ratios)} paired rounds"
        if len(ratios) > 1:
            measured += f", range {min(ratios):.2f}-{max(ratios):.2f}"
        measured += ")"
        us = {
            system: statistics.median(
                [p.us_per_request for p in cpu if p.system == system and p.concurrency == conns]
                or [0.0]
            )
            for system in (METRICS_ON, METRICS_OFF)
        }
        if us[METRICS_ON] and us[METRICS_OFF]:
            measured += (
                f"; CPU per request {us[METRICS_ON]:.0f} vs {us[METRICS_OFF]:.0f} us "
                f"(+{100 * (us[METRICS_ON] / us[METRICS_OFF] - 1):.1f}%)"
            )
        label = f"{conns} connection{'s' if conns != 1 else ''}"
        out.append(
            Verdict(
                METRICS_ON,
                f"req/s >= {METRICS_RATIO_TARGET:.0%} of {METRICS_OFF}'s (SERVAL_METRICS=0) "
                f"at {label}",
                measured,
                ratio >= METRICS_RATIO_TARGET,
            )
        )
    return out


def ray_verdicts(comparisons: Sequence[Comparison]) -> list[Verdict]:
    """serval against Ray Serve on the same cluster (--runtime ray)."""
    out = []
    for c in comparisons:
        if c.concurrency == RPS_AT:
            out.append(
                Verdict(
                    c.system,
                    f"req/s >= {RAY_RPS_TARGET:g}x {c.baseline}'s at {RPS_AT} connections",
                    f"{c.rps_ratio:.2f}x",
                    c.rps_ratio >= RAY_RPS_TARGET,
                )
            )
        if c.concurrency == P50_AT:
            out.append(
                Verdict(
                    c.system,
                    f"p50 <= 1/{1 / RAY_P50_TARGET:g} of {c.baseline}'s at {P50_AT} connection",
                    f"{c.p50_ratio:.2f}x (1/{1 / c.p50_ratio:.1f})" if c.p50_ratio else "n/a",
                    0 < c.p50_ratio <= RAY_P50_TARGET,
                )
            )
    return out


def ceiling_line(results: Sequence[Result], gen: LoadGenerator) -> str:
    """The generator's proven rate: bare uvicorn at the most connections measured."""
    bare = [r for r in results if r.system == BARE]
    if not bare:
        return "load generator ceiling: unknown (bare uvicorn not measured)"
    top = max(bare, key=lambda r: r.concurrency)
    conns = f"{top.concurrency} connection{'s' if top.concurrency != 1 else ''}"
    return (
        f"load generator ceiling: >= {top.rps:,.0f} req/s ({gen.describe()} sustained that "
        f"against {BARE} at {conns} in this run)"
    )


# -- the command line ---------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=5.0, help="seconds per point (default 5)")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds (default 1)")
    p.add_argument("--quick", action="store_true", help="2 s per point")
    p.add_argument(
        "--rounds", type=int, default=1, help="repeat, report medians (default 1; 3 when noisy)"
    )
    p.add_argument("--json", type=Path, help="results file (default: benchmarks/results/)")
    p.add_argument("--runtime", choices=("local", "ray"), default="local", help="default: local")
    p.add_argument(
        "--ray-address", help="with --runtime ray: 'auto' or ray://host:10001 (default: new)"
    )
    p.add_argument("--loadgen", choices=KINDS, default="auto", help="default: wrk if installed")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    p.add_argument("--processes", type=int, default=0, help="pyload processes (default: cores)")
    p.add_argument(
        "--systems",
        help="comma-separated subset, e.g. 'metrics on,metrics off' (default: all)",
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    systems = (
        (*(s for s in SYSTEMS if s not in OWN_INSTANCE), RAY_SERVE)
        if args.runtime == "ray"
        else tuple(SYSTEMS)
    )
    if args.systems:
        wanted = [s.strip() for s in args.systems.split(",") if s.strip()]
        unknown = sorted(set(wanted) - set(systems))
        if unknown:
            raise SystemExit(f"--systems: unknown {unknown}; known: {list(systems)}")
        systems = tuple(s for s in systems if s in wanted)
    plan = Plan(
        2.0 if args.quick else args.duration,
        args.warmup,
        systems=systems,
        runtime=args.runtime,
        ray_address=args.ray_address,
        rounds=max(1, args.rounds),
    )
    check_runtime(plan.runtime)
    gen = LoadGenerator.pick(args.loadgen, threads=args.threads, processes=args.processes)
    print(
        f"load generator: {gen.describe()}; {plan.duration_s:g}s per point, {plan.rounds} round(s)",
        flush=True,
    )
    load = os.getloadavg()[0]
    if load > BUSY_LOAD:
        print(f"warning: load average {load:.2f} before starting: other work will skew ratios")
    cpu: list[CpuPoint] = []
    rounds = run_benchmark(
        plan, gen, lambda msg: print(f"  {msg}", file=sys.stderr, flush=True), cpu
    )
    settings = {**asdict(plan), "loadgen": gen.describe(), "loadavg_1m_at_start": round(load, 2)}
    errors = report(rounds, gen, settings, args.json, cpu)
    if errors:
        print(f"ERRORS: {errors} failed requests; the figures above are not comparable")
    return 1 if errors else 0


def report(
    rounds: list[list[Result]],
    gen: LoadGenerator,
    settings: dict[str, Any],
    path: Path | None,
    cpu: Sequence[CpuPoint] = (),
) -> int:
    """Print the tables, the ceiling and the verdicts, save the file; returns the errors."""
    results = median_results(rounds)
    comparisons = compare(results, BARE)
    title = f"HTTP overhead, {settings.get('runtime', 'local')} runtime"
    title += f" (medians of {len(rounds)} rounds)" if len(rounds) > 1 else ""
    print_tables(
        results_table(results, title=title),
        comparisons_table(comparisons, title=f"against {BARE}, same run (req/s: share of it)"),
    )
    print(
        "serval: default options (max_ongoing_requests=5); mor=100: max_ongoing_requests=100; "
        "metrics on/off: mor=100 on two more instances, SERVAL_METRICS=1 and 0"
    )
    print(ceiling_line(results, gen))
    judged = verdicts([c for c in comparisons if c.system not in (RAY_SERVE, *OWN_INSTANCE)])
    judged += metrics_verdicts(rounds, cpu)
    if any(r.system == RAY_SERVE for r in results):
        against_ray = [c for c in compare(results, RAY_SERVE) if c.system != BARE]
        print_tables(
            comparisons_table(against_ray, title=f"against {RAY_SERVE}, same cluster, same run")
        )
        comparisons += against_ray
        judged += ray_verdicts(against_ray)
    for v in judged:
        print(v.line())
    saved = save_results(
        results,
        benchmark=BENCHMARK,
        settings=settings,
        extra={
            "rounds": [[asdict(r) for r in rows] for rows in rounds],
            "comparisons": [asdict(c) for c in comparisons],
            "verdicts": [asdict(v) for v in judged],
            "cpu_per_request": [asdict(p) for p in cpu],
        },
        path=path,
    )
    print(f"saved {saved}")
    return sum(r.errors for r in results)


if __name__ == "__main__":
    sys.exit(main())
