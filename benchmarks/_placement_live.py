"""The live half of benchmarks/placement.py: the many-models app over a registry of N
models, driven by wrk, measured from outside its processes.

For each size, a directory registry of N registered models (``link_registry``: hard
links to a few generated tenants, so 100,000 take seconds), serval with the
many-models app on it (its defaults: a shared pool of 2 replicas, 64 models each, a
disk warm tier), and ``wrk`` posting ``/score`` for a model drawn uniformly from the N
on every request: nearly every request is a cold load that evicts another model, the
most placement churn a workload makes. Reported, over the run:

- requests/s, p50 and p99, errors (wrk);
- loads/s: placement changes (each load evicts a model once the caches are full);
- placement bytes/s the controller sent (``serval_placement_update_bytes_total``,
  deltas) and whole-table bytes/s in the same run (targets; none when no replica
  comes or goes);
- controller CPU (its process's CPU seconds over the run's seconds);
- router memory: the resident set of the Dispatcher replica (where the model-aware
  routers to the pools live) and of the proxy, after the run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import httpx
import psutil

from benchmarks._harness import wrk
from benchmarks._harness.procs import free_port

ROOT = os.path.join(tempfile.gettempdir(), "serval-bench-placement")
ROWS = "[[5.1,3.5,1.4,0.2],[6.2,2.9,4.3,1.3]]"


@dataclass
class LiveFigures:
    models: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    loads_per_s: float
    delta_bytes_per_s: float
    whole_bytes_per_s: float
    controller_cpu: float  # share of one core
    dispatcher_mb: float
    proxy_mb: float


def _lua(models: int) -> str:
    # Each wrk thread has its own Lua state, seeded alike unless told otherwise: without
    # a seed per thread, both threads would ask for the same models in the same order.
    return (
        "local threads = 0\n"
        "setup = function(thread)\n"
        "  threads = threads + 1\n"
        '  thread:set("id", threads)\n'
        "end\n"
        "init = function(args)\n"
        "  math.randomseed(os.time() * 1000 + id)\n"
        "end\n"
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        "request = function()\n"
        f"  local m = math.random(0, {models - 1})\n"
        '  return wrk.format(nil, "/score", nil, '
        f'\'{{"tenant": "model\' .. m .. \'", "data": {ROWS}}}\')\n'
        "end\n" + wrk.REPORT_LUA
    )


def _metric(text: str, name: str, kind: str) -> float:
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and f'kind="{kind}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _processes() -> dict[str, list[psutil.Process]]:
    """This instance's processes by role (the driver's descendants)."""
    roles: dict[str, list[psutil.Process]] = {}
    for child in psutil.Process().children(recursive=True):
        try:
            argv = child.cmdline()
        except psutil.Error:
            continue
        if "-m" in argv[:-1]:
            role = argv[argv.index("-m") + 1]  # serval.controller, serval.proxy, ...
            roles.setdefault(role, []).append(child)
    return roles


def measure_live(models: int, duration_s: float, connections: int) -> LiveFigures:
    import serval
    from serval.apps._tenants import link_registry
    from serval.apps.many_models import ManyModelsConfig, build_app
    from serval.transport.messages import ListModels

    registry = os.path.join(ROOT, f"registry-{models}")
    link_registry(registry, models)
    home = tempfile.mkdtemp(prefix="svpl", dir="/tmp")  # short: unix socket paths
    saved = {k: os.environ.get(k) for k in ("SERVAL_HOME", "SERVAL_LOG_LEVEL")}
    os.environ["SERVAL_HOME"] = home
    os.environ.setdefault("SERVAL_LOG_LEVEL", "WARNING")
    port = free_port()
    try:
        serval.start(http_options={"port": port})
        warm = "disk:" + os.path.join(home, "warm")
        app = build_app(ManyModelsConfig(registry=registry, warm=warm))
        serval.run(app, name="mm", route_prefix="/")
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=60) as client:
            for i in range(0, models, max(1, models // 50)):  # routers subscribe; warm up
                client.post("/score", json={"tenant": f"model{i}", "data": [[5.1, 3.5, 1.4, 0.2]]})
            before = client.get("/-/metrics").text
        roles = _processes()
        (controller,) = roles["serval.controller"]
        dispatchers = serval.api._call(ListModels())["mm/Dispatcher"]
        dispatcher = next(
            p
            for p in roles["serval.replica"]
            if any(r in " ".join(p.cmdline()) for r in dispatchers)
        )
        cpu0 = sum(controller.cpu_times()[:2])
        loads0 = _loads()
        started = time.monotonic()
        result = _wrk(f"{base}/", models, duration_s, connections)
        elapsed = time.monotonic() - started
        cpu = (sum(controller.cpu_times()[:2]) - cpu0) / elapsed
        loads = _loads() - loads0
        after = httpx.get(f"{base}/-/metrics", timeout=60).text
        name = "serval_placement_update_bytes_total"
        return LiveFigures(
            models=models,
            rps=result.requests / result.duration_s,
            p50_ms=result.p50_ms,
            p99_ms=result.p99_ms,
            errors=result.errors.total,
            loads_per_s=loads / elapsed,
            delta_bytes_per_s=(_metric(after, name, "models") - _metric(before, name, "models"))
            / elapsed,
            whole_bytes_per_s=(_metric(after, name, "target") - _metric(before, name, "target"))
            / elapsed,
            controller_cpu=cpu,
            dispatcher_mb=dispatcher.memory_info().rss / 2**20,
            proxy_mb=sum(p.memory_info().rss for p in roles["serval.proxy"]) / 2**20,
        )
    finally:
        serval.shutdown()
        shutil.rmtree(home, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _loads() -> int:
    import serval

    stats: dict[str, Any] = serval.api.model_stats("mm")
    return sum(int(s["hot"]["loads"]) for s in stats.values())


def _wrk(url: str, models: int, duration_s: float, connections: int) -> Any:
    fd, path = tempfile.mkstemp(suffix=".lua", prefix="serval-wrk-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(_lua(models))
        argv = wrk.command(url, connections, duration_s, path, threads=2, timeout_s=30)
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    finally:
        os.unlink(path)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout}")
    return wrk.parse_output(proc.stdout)


def print_live(out: list[LiveFigures], duration_s: float, connections: int) -> None:
    load = os.getloadavg()[0]
    print(
        f"\nlive: many-models app (2 replicas x 64 models), wrk {connections} connections "
        f"x {duration_s:.0f} s, a uniformly random model per request; load average {load:.1f}"
    )
    print(
        f"{'models':>8} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
        f"{'loads/s':>7} {'delta B/s':>9} {'whole B/s':>9} {'ctrl CPU':>8} "
        f"{'dispatcher MB':>13} {'proxy MB':>8}"
    )
    for f in out:
        print(
            f"{f.models:>8,} {f.rps:>7,.0f} {f.p50_ms:>7.1f} {f.p99_ms:>7.1f} {f.errors:>6} "
            f"{f.loads_per_s:>7,.0f} {f.delta_bytes_per_s:>9,.0f} {f.whole_bytes_per_s:>9,.0f} "
            f"{f.controller_cpu:>8.1%} {f.dispatcher_mb:>13.0f} {f.proxy_mb:>8.0f}"
        )
