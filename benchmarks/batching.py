"""What ``@serval.batch`` buys over HTTP, against the model's own limit.

The model costs a fixed per-call overhead plus a per-item cost (real numpy work: a
fixed matrix product per call, and a row of a larger one per item). One run measures:

- ``direct limit``: the model called in one process at its best batch size (items/s);
- ``serval @batch``: a 1-replica deployment whose ``__call__`` awaits a ``@serval.batch``
  method, driven over HTTP at saturation;
- ``serval unbatched``: the same deployment calling the model once per request;
- ``1 client``: p50 of sequential requests with ``@batch`` against the model time for one
  item (the adaptive wait must not add ``batch_wait_timeout_s`` when nobody else comes).

Targets: ``@batch`` ≥ 80% of the direct limit; at 1 client, p50 ≤ model time + 1 ms.
Run: python benchmarks/batching.py [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import os
import statistics
import tempfile
import time

import numpy as np

from benchmarks._harness.loadgen import LoadGenerator
from benchmarks._harness.procs import free_port

DIM = 2048
OVERHEAD_DIM = 400
MAX_BATCH = 32


class Model:
    """Fixed overhead (OVERHEAD_DIM² product) + per item (one DIM-row product)."""

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.fixed = rng.standard_normal((OVERHEAD_DIM, OVERHEAD_DIM))
        self.weights = rng.standard_normal((DIM, DIM))
        self.inputs = rng.standard_normal((MAX_BATCH * 4, DIM))

    def __call__(self, idx: list[int]) -> list[float]:
        np.linalg.norm(self.fixed @ self.fixed)  # the per-call overhead
        out = np.tanh(self.inputs[idx] @ self.weights) @ self.weights
        result: list[float] = out.sum(axis=1).tolist()
        return result


def direct_limit(duration_s: float) -> tuple[float, int, float]:
    """Best items/s over batch sizes, that batch size, and the time of a 1-item call."""
    import threadpoolctl

    model = Model()
    best, best_b = 0.0, 1
    single = 0.0
    with threadpoolctl.threadpool_limits(1):
        for b in (1, 2, 4, 8, 16, 32):
            idx = list(range(b))
            model(idx)
            n, t0 = 0, time.perf_counter()
            times = []
            while time.perf_counter() - t0 < duration_s / 6:
                s = time.perf_counter()
                model(idx)
                times.append(time.perf_counter() - s)
                n += b
            rate = n / (time.perf_counter() - t0)
            if b == 1:
                single = statistics.median(times)
            if rate > best:
                best, best_b = rate, b
    return best, best_b, single


def _deployments() -> tuple[object, object]:
    import serval

    @serval.deployment(max_ongoing_requests=MAX_BATCH * 2, name="batched")
    class Batched:
        def __init__(self) -> None:
            import threadpoolctl

            threadpoolctl.threadpool_limits(1)
            self.model = Model()

        @serval.batch(max_batch_size=MAX_BATCH, batch_wait_timeout_s=0.01)
        async def predict(self, idx: list[int]) -> list[float]:
            return await asyncio.to_thread(self.model, idx)

        async def __call__(self, request: object) -> float:
            return float(await self.predict(int(request.query_params.get("i", "0"))))  # type: ignore[attr-defined]

    @serval.deployment(max_ongoing_requests=MAX_BATCH * 2, name="unbatched")
    class Unbatched:
        def __init__(self) -> None:
            import threadpoolctl

            threadpoolctl.threadpool_limits(1)
            self.model = Model()

        def __call__(self, request: object) -> float:
            return float(self.model([int(request.query_params.get("i", "0"))])[0])  # type: ignore[attr-defined]

    return Batched, Unbatched


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--duration", type=float, default=None)
    args = parser.parse_args()
    duration = args.duration or (2.0 if args.quick else 6.0)
    os.environ.setdefault("SERVAL_HOME", tempfile.mkdtemp(prefix="svb", dir="/tmp"))
    os.environ.setdefault("SERVAL_LOG_LEVEL", "WARNING")
    import serval

    limit, best_b, one_item_s = direct_limit(duration)
    gen = LoadGenerator.pick("auto")
    port = free_port()
    serval.start(http_options={"port": port})
    batched, unbatched = _deployments()
    serval.run(batched.bind(), name="b", route_prefix="/b")  # type: ignore[attr-defined]
    serval.run(unbatched.bind(), name="u", route_prefix="/u")  # type: ignore[attr-defined]
    base = f"http://127.0.0.1:{port}"
    conns = MAX_BATCH * 2
    with_batch = gen.measure(f"{base}/b", conns, duration, warmup_s=1)
    without = gen.measure(f"{base}/u", conns, duration, warmup_s=1)
    lone = gen.measure(f"{base}/b", 1, duration, warmup_s=1)
    serval.shutdown()

    model_ms = one_item_s * 1000
    ratio = with_batch.rps / limit
    print(
        f"load generator: {gen.describe()}; model: 1 item {model_ms:.2f} ms, "
        f"best direct batch {best_b}"
    )
    print(f"{'system':<22}{'items/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}  vs limit")
    print(f"{'direct limit':<22}{limit:>10.0f}{'':>9}{'':>9}{'':>8}  100%")
    for name, m in (
        ("serval @batch", with_batch),
        ("serval unbatched", without),
        ("serval @batch 1 conn", lone),
    ):
        print(
            f"{name:<22}{m.rps:>10.0f}{m.p50_ms:>9.2f}{m.p99_ms:>9.2f}"
            f"{m.errors.total:>8}  {m.rps / limit:.0%}"
        )
    print(f"@batch / unbatched: {with_batch.rps / max(without.rps, 1e-9):.2f}x")
    print(f"target @batch >= 80% of limit: {ratio:.0%} -> {'PASS' if ratio >= 0.8 else 'MISS'}")
    extra = lone.p50_ms - model_ms
    print(
        f"target 1-client p50 <= model + 1 ms: +{extra:.2f} ms -> "
        f"{'PASS' if extra <= 1.0 else 'MISS'}"
    )


if __name__ == "__main__":
    main()
