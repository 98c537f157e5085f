"""What a scrape of ``/-/metrics`` costs on a many-models instance.

Starts a local serval with a multiplexed deployment (2 replicas by default) whose
models are tiny generated objects (a dict per tenant, sized 1 KB by a ``sizer``), so
that 10,000 models can be loaded on a shared machine in seconds; drives requests for
every tenant (tenant i gets ``1 + (i % 7)`` requests, so the top-N ranking has work to
do), then times ``--scrapes`` scrapes of ``GET /-/metrics`` and reports their median and
worst latency and the size of the text. Targets: under 200 ms and under 1 MB.

Everything on the path is real (processes, transport, caches, merge); only the models
are small.

Run: python benchmarks/metrics_scrape.py [--models 10000] [--replicas 2] [--scrapes 10]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

import serval as serve
from benchmarks._harness.procs import free_port
from benchmarks.http_overhead import _environ

LATENCY_TARGET_S = 0.2
SIZE_TARGET_BYTES = 1_000_000


@serve.deployment(max_ongoing_requests=100)
class Tenants:
    @serve.multiplexed(max_num_models_per_replica=-1, sizer=lambda model: 1024)
    async def get_model(self, model_id: str) -> dict[str, Any]:
        return {"tenant": model_id, "weights": [0.0] * 8}

    async def score(self) -> str:
        model = await self.get_model(serve.get_multiplexed_model_id())
        return str(model["tenant"])


def drive(handle: Any, models: int, window: int = 256) -> int:
    """Requests for every tenant, ``window`` in flight at a time; returns how many."""
    ids = [f"tenant{i:05d}" for i in range(models) for _ in range(1 + i % 7)]
    sent = 0
    for start in range(0, len(ids), window):
        chunk = ids[start : start + window]
        responses = [handle.options(multiplexed_model_id=m).score.remote() for m in chunk]
        for model_id, response in zip(chunk, responses, strict=True):
            if response.result(timeout_s=120) != model_id:
                raise RuntimeError(f"wrong answer for {model_id}")
        sent += len(chunk)
    return sent


def scrape(client: httpx.Client) -> tuple[float, bytes]:
    """One scrape on a kept-alive connection (as Prometheus does): its time and text."""
    started = time.perf_counter()
    r = client.get("/-/metrics")
    elapsed = time.perf_counter() - started
    r.raise_for_status()
    return elapsed, r.content


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", type=int, default=10_000)
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--scrapes", type=int, default=10)
    args = p.parse_args(argv)
    home = tempfile.mkdtemp(prefix="svs", dir="/tmp")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with _environ(SERVAL_HOME=home, SERVAL_LOG_LEVEL="WARNING"):
        try:
            return measure(args, url, port)
        finally:
            serve.shutdown()
            shutil.rmtree(home, ignore_errors=True)


def measure(args: argparse.Namespace, url: str, port: int) -> int:
    """Start, load, scrape; prints the figures, returns the exit status."""
    serve.start(http_options={"port": port})
    handle = serve.run(
        Tenants.options(num_replicas=args.replicas).bind(),  # type: ignore[attr-defined]
        name="tenants",
        route_prefix="/",
    )
    started = time.perf_counter()
    sent = drive(handle, args.models)
    print(
        f"{sent:,} requests for {args.models:,} models on {args.replicas} replicas in "
        f"{time.perf_counter() - started:.1f}s",
        flush=True,
    )
    timings, body = [], b""
    with httpx.Client(base_url=url, timeout=30) as client:
        scrape(client)  # the connection, not counted
        for _ in range(args.scrapes):
            elapsed, body = scrape(client)
            timings.append(elapsed)
    families = list(text_string_to_metric_families(body.decode()))
    loaded = sum(s.value for f in families if f.name == "serval_models_loaded" for s in f.samples)
    series = sum(len(f.samples) for f in families)
    median, worst = statistics.median(timings), max(timings)
    print(f"models loaded (serval_models_loaded): {loaded:,.0f}")
    print(f"scrape: median {median * 1000:.1f} ms, worst {worst * 1000:.1f} ms "
          f"over {len(timings)}; {len(body):,} bytes, {series:,} samples")  # fmt: skip
    ok = worst < LATENCY_TARGET_S and len(body) < SIZE_TARGET_BYTES
    print(
        f"{'PASS' if ok else 'MISS'}  scrape < {LATENCY_TARGET_S * 1000:.0f} ms "
        f"(worst of {len(timings)}) and < {SIZE_TARGET_BYTES:,} bytes; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
