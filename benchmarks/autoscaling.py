"""Autoscaling under a step load: from idle to a load that needs 4 replicas.

A deployment serves requests that take ``SERVICE_S`` each with at most
``max_ongoing_requests=2`` per replica; it autoscales between 1 and 4 replicas with
``target_ongoing_requests=2``. At t=0, ``CLIENTS`` closed-loop clients start (8 clients
→ 4 replicas). Prints, per second, requests, p99 and replicas, then: the time until
the p99 of a one-second window is back under ``P99_TARGET_MS`` and stays there, and
the number of failed requests (target: 0).

Run: python benchmarks/autoscaling.py [--duration S]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import os
import tempfile
import time

import httpx

from benchmarks._harness.procs import free_port
from benchmarks._harness.stats import percentile

SERVICE_S = 0.05
CLIENTS = 8
P99_TARGET_MS = 3 * SERVICE_S * 1000


def deployment() -> object:
    import serval

    @serval.deployment(
        max_ongoing_requests=2,
        autoscaling_config={
            "min_replicas": 1,
            "max_replicas": 4,
            "target_ongoing_requests": 2,
            "upscale_delay_s": 0.5,
            "downscale_delay_s": 30,
            "look_back_period_s": 1,
            "metrics_interval_s": 0.25,
        },
    )
    async def step(request: object) -> str:
        await asyncio.sleep(SERVICE_S)
        return "ok"

    return step


async def drive(url: str, duration_s: float) -> list[tuple[float, float, bool]]:
    """(start offset, latency s, ok) of every request."""
    out: list[tuple[float, float, bool]] = []
    t0 = time.perf_counter()

    async def client() -> None:
        async with httpx.AsyncClient(timeout=60) as c:
            while time.perf_counter() - t0 < duration_s:
                began = time.perf_counter()
                try:
                    ok = (await c.get(url)).status_code == 200
                except httpx.HTTPError:
                    ok = False
                out.append((began - t0, time.perf_counter() - began, ok))

    await asyncio.gather(*[client() for _ in range(CLIENTS)])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=20.0)
    args = parser.parse_args()
    os.environ.setdefault("SERVAL_HOME", tempfile.mkdtemp(prefix="sva", dir="/tmp"))
    os.environ.setdefault("SERVAL_LOG_LEVEL", "WARNING")
    import serval

    port = free_port()
    serval.start(http_options={"port": port})
    serval.run(deployment().bind(), name="step", route_prefix="/step")  # type: ignore[attr-defined]
    time.sleep(1.0)  # idle before the step
    samples = asyncio.run(drive(f"http://127.0.0.1:{port}/step", args.duration))
    replicas = serval.status().applications["step"].deployments["step"].replica_states
    serval.shutdown()

    failed = sum(not ok for _, _, ok in samples)
    windows: dict[int, list[float]] = {}
    for start, latency, _ in samples:
        windows.setdefault(int(start), []).append(latency * 1000)
    print(f"{'second':>6}{'requests':>10}{'p99 ms':>9}")
    settled_at = None
    for sec in sorted(windows):
        p99 = percentile(windows[sec], 99)
        print(f"{sec:>6}{len(windows[sec]):>10}{p99:>9.1f}")
        if p99 > P99_TARGET_MS:
            settled_at = None
        elif settled_at is None:
            settled_at = sec
    print(f"replicas at the end: {replicas}")
    when = f"{settled_at + 1} s" if settled_at is not None else "never"
    print(f"p99 back under {P99_TARGET_MS:.0f} ms (and staying) after: {when}")
    print(f"failed requests: {failed} of {len(samples)} -> {'PASS' if failed == 0 else 'MISS'}")


if __name__ == "__main__":
    main()
