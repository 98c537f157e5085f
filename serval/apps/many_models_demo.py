"""``make run``: the many-models application on embedded defaults, end to end.

1. Generates ``--tenants`` (default 10,000) iris-style scikit-learn tenant models into a
   local directory registry (once, ~2 ms of CPU each on all cores; reused on later runs).
2. Starts serval with the many-models app: a shared pool of 2 replicas and a dedicated
   pool ``pool1`` that ``tenant1`` is pinned to.
3. Sends a burst of Zipf-distributed ``/score`` requests with a progress bar, and
   prints throughput, latency, model loads and the hot-cache hit ratio.
4. Moves ``tenant2`` to ``pool1`` at run time (``/update_dedicated_pool``) and shows
   its next answer coming from there; asks ``tenant3`` through the Open Inference
   Protocol (``POST /v2/models/tenant3/infer``, what ``tritonclient`` sends).
5. Keeps serving, with a trickle of requests (``--trickle`` per second) so the dashboard
   stays live, and prints what to try: the dashboard, ``/-/metrics``, a ``curl`` for
   ``/score``, ``serval models ls``, ``serval logs``. Ctrl-C stops everything.
   ``--once`` stops after step 4 instead (for scripts and tests).

No external services: the warm tier is a local disk directory.
Options: ``python -m serval.apps.many_models_demo --tenants 10000 --requests 4000
--concurrency 16 --port 8000 --trickle 2 [--once]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import sys
import threading
import time
from typing import Any

import httpx
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import serval
from serval.apps._tenants import generate, sample_rows
from serval.apps.many_models import ManyModelsConfig, build_app

console = Console()


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def make_registry(root: str, tenants: int) -> None:
    with _progress() as progress:
        task = progress.add_task("tenant models", total=tenants)
        for _ in generate(root, tenants):
            progress.advance(task)


def zipf_tenants(n: int, tenants: int, seed: int = 3) -> list[str]:
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, tenants + 1) ** 1.1
    ranks = rng.choice(tenants, size=n, p=weights / weights.sum())
    return [f"tenant{r + 1}" for r in ranks]


async def burst(base: str, trace: list[str], concurrency: int) -> tuple[list[float], list[Any]]:
    rows = sample_rows(5)
    latencies: list[float] = []
    answers: list[Any] = []
    position = 0
    with _progress() as progress:
        task = progress.add_task("score requests", total=len(trace))

        async def client() -> None:
            nonlocal position
            async with httpx.AsyncClient(base_url=base, timeout=120) as c:
                while position < len(trace):
                    tenant = trace[position]
                    position += 1
                    began = time.perf_counter()
                    r = await c.post("/score", json={"tenant": tenant, "data": rows})
                    latencies.append((time.perf_counter() - began) * 1000)
                    answers.append(
                        r.json()
                        if r.status_code == 200
                        else {"error": r.status_code, "detail": r.text}
                    )
                    progress.advance(task)

        await asyncio.gather(*[client() for _ in range(concurrency)])
    return latencies, answers


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m serval.apps.many_models_demo")
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--registry", default=os.path.join(".serval-demo", "registry"))
    parser.add_argument("--once", action="store_true", help="stop after the burst (scripts)")
    parser.add_argument("--keep", action="store_true", help=argparse.SUPPRESS)  # the default now
    parser.add_argument(
        "--trickle", type=float, default=2.0, help="requests per second while serving (0: none)"
    )
    args = parser.parse_args(argv)

    registry = os.path.abspath(args.registry)
    # The figures are the demo's output; serval's own INFO lines would bury them
    # (SERVAL_LOG_LEVEL=INFO make run shows them).
    os.environ.setdefault("SERVAL_LOG_LEVEL", "WARNING")
    console.print(f"[bold]serval many-models demo[/]: {args.tenants} tenants in {registry}")
    make_registry(registry, args.tenants)
    warm = "disk:" + os.path.join(os.path.dirname(registry), "warm")
    config = ManyModelsConfig(
        registry=registry,
        warm=warm,
        shared_replicas=2,
        pools={"pool1": 1},
        mapping={"tenant1": "pool1"},
        max_models_per_replica=64,
    )
    token_file = os.path.join(os.path.dirname(registry), "admin-token")
    token = _admin_token(token_file)
    started = time.perf_counter()
    serval.start(http_options={"port": args.port, "admin_token": token})
    try:
        serval.run(build_app(config), name="many_models", route_prefix="/")
        base = f"http://127.0.0.1:{args.port}"
        console.print(f"serving at {base} after {time.perf_counter() - started:.1f}s")
        trace = zipf_tenants(args.requests, args.tenants)
        t0 = time.perf_counter()
        latencies, answers = asyncio.run(burst(base, trace, args.concurrency))
        elapsed = time.perf_counter() - t0
        report(trace, args.tenants, latencies, answers, elapsed)
        move_tenant(base)
        oip_call(base)
        if not args.once:
            keep_serving(base, args.tenants, args.trickle, token, token_file)
    finally:
        serval.shutdown()


def _admin_token(path: str) -> str:
    """The demo's admin token (the admin API and the dashboard need one), kept in a
    private file so that ``serval models ls`` can read it without a command line."""
    try:
        with open(path, encoding="utf-8") as f:
            token = f.read().strip()
        if len(token) >= 16:
            return token
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    return token


def keep_serving(base: str, tenants: int, per_second: float, token: str, token_file: str) -> None:
    """Serve until Ctrl-C, with a trickle of Zipf requests so the dashboard stays live."""
    print_urls(base, per_second, token, token_file)
    stop = threading.Event()
    if per_second > 0:
        threading.Thread(
            target=_trickle, args=(base, tenants, per_second, stop), daemon=True
        ).start()
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        console.print("Ctrl-C: shutting down")
    finally:
        stop.set()


def _trickle(base: str, tenants: int, per_second: float, stop: threading.Event) -> None:
    rows = sample_rows(2)
    trace = zipf_tenants(100_000, tenants, seed=11)
    with httpx.Client(base_url=base, timeout=30) as c:
        for tenant in trace:
            if stop.wait(1.0 / per_second):
                return
            try:
                c.post("/score", json={"tenant": tenant, "data": rows})
            except httpx.HTTPError:
                pass  # shutting down


def print_urls(base: str, per_second: float, token: str, token_file: str) -> None:
    body = json.dumps({"tenant": "tenant7", "data": sample_rows(1)})
    venv_bin = os.path.dirname(sys.executable)
    cli = "serval"
    if shutil.which("serval") != os.path.join(venv_bin, "serval"):
        cli = os.path.relpath(os.path.join(venv_bin, "serval"))
    rel_token = os.path.relpath(token_file)
    moving = f"; {per_second:g} requests/s keep the figures moving" if per_second > 0 else ""
    console.print(f"\n[bold green]serval keeps serving at {base}[/] (Ctrl-C stops it){moving}")
    lines = [
        ("dashboard", f"{base}/-/dashboard#token={token}"),
        ("metrics", f'curl -s {base}/-/metrics -H "authorization: Bearer $(cat {rel_token})"'),
        ("score", f"curl -s {base}/score -H 'content-type: application/json' -d '{body}'"),
        ("oip", f"curl -s {base}/v2/models/tenant7  (Open Inference Protocol v2)"),
        ("models", f"SERVAL_ADMIN_TOKEN=$(cat {rel_token}) {cli} models ls"),
        ("logs", f"{cli} logs --follow --component replica"),
    ]
    for name, text in lines:
        console.print(f"  {name:<12} {text}", markup=False, highlight=False, soft_wrap=True)
    console.print(
        "  (the #token part of the dashboard's address stays in your browser: it is never "
        "sent to the server)",
        style="dim",
    )


def report(
    trace: list[str], tenants: int, latencies: list[float], answers: list[Any], elapsed: float
) -> None:
    errors = [a for a in answers if "error" in a]
    stats = serval.api.model_stats("many_models")

    def total(tier: str, counter: str) -> int:
        return sum(int(s[tier][counter]) for s in stats.values())

    loads, hits, misses = total("hot", "loads"), total("hot", "hits"), total("hot", "misses")
    by_pool: dict[str, int] = {}
    for a in answers:
        if "deployment" in a:
            by_pool[a["deployment"]] = by_pool.get(a["deployment"], 0) + 1
    lat = np.array(latencies)
    table = Table("figure", "value", title="burst")
    table.add_row(
        "requests", f"{len(trace):,} ({len(set(trace)):,} distinct of {tenants:,} tenants)"
    )
    table.add_row("errors", str(len(errors)))
    table.add_row("throughput", f"{len(trace) / elapsed:.0f} req/s ({elapsed:.1f} s)")
    table.add_row(
        "latency p50 / p99", f"{np.percentile(lat, 50):.1f} / {np.percentile(lat, 99):.1f} ms"
    )
    table.add_row("model loads (into replica memory)", str(loads))
    table.add_row(
        "  of which from the warm tier / the registry",
        f"{total('warm', 'hits')} / {total('cold', 'loads')}",
    )
    table.add_row(
        "hot-cache hit ratio", f"{hits / (hits + misses):.1%}" if hits + misses else "n/a"
    )
    table.add_row("served by", ", ".join(f"{k}: {v}" for k, v in sorted(by_pool.items())))
    console.print(table)
    if errors:
        console.print(f"[red]first error:[/] {errors[0]}")


def move_tenant(base: str) -> None:
    rows = sample_rows(2)
    with httpx.Client(base_url=base, timeout=120) as c:
        before = c.post("/score", json={"tenant": "tenant2", "data": rows}).json()
        moved = c.post("/update_dedicated_pool", json={"mapping": {"tenant2": "pool1"}}).json()
        after = c.post("/score", json={"tenant": "tenant2", "data": rows}).json()
    console.print(
        f"tenant2 served by [bold]{before.get('deployment')}[/]; moved with "
        f"/update_dedicated_pool (prewarmed: {moved.get('prewarmed')}); now served "
        f"by [bold]{after.get('deployment')}[/]"
    )


def oip_call(base: str) -> None:
    rows = sample_rows(2)
    body = {
        "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [2, 4], "data": rows}],
        "outputs": [{"name": "predict"}],
    }
    answer = httpx.post(f"{base}/v2/models/tenant3/infer", json=body, timeout=120).json()
    console.print(f"OIP v2: POST /v2/models/tenant3/infer → {answer}", highlight=False)


if __name__ == "__main__":
    main()
