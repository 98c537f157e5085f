"""``make run``: the many-models application on embedded defaults, end to end.

1. Generates ``--tenants`` iris-style scikit-learn tenant models into a local directory
   registry (once; reused on later runs).
2. Starts serval with the many-models app: a shared pool of 2 replicas and a dedicated
   pool ``pool1`` that ``tenant1`` is pinned to.
3. Sends a burst of Zipf-distributed ``/score`` requests with a progress bar, and
   prints throughput, latency, model loads and the hot-cache hit ratio.
4. Moves ``tenant2`` to ``pool1`` at run time (``/update_dedicated_pool``) and shows
   its next answer coming from there.

No external services: the warm tier is a local disk directory.
Options: ``python -m serval.apps.many_models_demo --tenants 1000 --requests 4000
--concurrency 16 --port 8000 --keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
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
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--registry", default=os.path.join(".serval-demo", "registry"))
    parser.add_argument("--keep", action="store_true", help="keep serving until Ctrl-C")
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
    started = time.perf_counter()
    serval.start(http_options={"port": args.port})
    try:
        serval.run(build_app(config), name="many_models", route_prefix="/")
        base = f"http://127.0.0.1:{args.port}"
        console.print(f"serving at {base} after {time.perf_counter() - started:.1f}s")
        trace = zipf_tenants(args.requests, args.tenants)
        t0 = time.perf_counter()
        latencies, answers = asyncio.run(burst(base, trace, args.concurrency))
        elapsed = time.perf_counter() - t0
        report(trace, latencies, answers, elapsed)
        move_tenant(base)
        if args.keep:
            console.print(f"still serving at {base} (Ctrl-C to stop)")
            serval.api._block_until_interrupted()
    finally:
        if not args.keep:
            serval.shutdown()


def report(trace: list[str], latencies: list[float], answers: list[Any], elapsed: float) -> None:
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
    table.add_row("requests", f"{len(trace)} ({len(set(trace))} distinct tenants)")
    table.add_row("errors", str(len(errors)))
    table.add_row("throughput", f"{len(trace) / elapsed:.0f} req/s")
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


if __name__ == "__main__":
    main()
