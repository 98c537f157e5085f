"""Model placement at scale: what routers and the controller pay as models come and go.

Placement (which replica holds which model) changes on every load and eviction. Routers
and the controller exchange it as deltas (``ModelDelta``), not whole tables.

**In process** (the extreme: every model held somewhere), this benchmark drives the real
``Publisher`` and ``Router`` in one process with 10,000 and 100,000 models held across
``--replicas`` replicas, and a churn of ``--churn`` loads per second (each load evicts
one model), and reports for each size:

- placement bytes per second to each router, deltas against whole tables (what a
  full re-publish per change would send);
- controller CPU per change (fold into its replica record and the published table,
  encode, send), and the CPU share at that churn;
- router CPU per change (holder table update), and router memory for the table;
- p50/p99 of the router's model-aware pick (one request's routing decision), which
  must not grow with the number of models.

**Live** (``benchmarks/_placement_live.py``): the many-models app on a directory
registry of 10,000 and 100,000 registered models, real processes, wrk asking for a
random model per request: requests/s, p50/p99, loads/s, the placement bytes/s the
controller really sent, its CPU, and the memory of the processes that route.

Run: python benchmarks/placement.py [--replicas N] [--churn PER_S] [--changes N]
     [--duration S] [--connections N] [--no-live]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import random
import time
import tracemalloc
from dataclasses import dataclass

import msgspec

from benchmarks._harness import wrk
from benchmarks._harness.stats import percentile
from benchmarks._placement_live import LiveFigures, measure_live, print_live
from serval.controller.publisher import Publisher, fold
from serval.router.replica_client import FakeReplicaClient
from serval.router.router import Router
from serval.transport.messages import (
    CallResult,
    DeploymentTarget,
    Message,
    ModelDelta,
    ReplicaInfo,
    Update,
)

KEY = "deployment:app/models"


class _Sink:
    """A router's connection as the publisher sees it: encodes (as a connection would)
    and keeps the frames for the router, counting their bytes."""

    closed = False

    def __init__(self) -> None:
        self.bytes = 0
        self.pending: list[Update] = []

    def send(self, stream_id: int, msg: Message) -> int:
        size = len(msgspec.msgpack.encode(msg))
        self.bytes += size
        assert isinstance(msg, Update)
        self.pending.append(msg)
        return size


@dataclass
class Figures:
    models: int
    delta_bytes_per_s: float
    full_bytes_per_s: float
    controller_us_per_change: float
    controller_cpu_share: float
    router_us_per_change: float
    router_table_mb: float
    pick_p50_us: float
    pick_p99_us: float


def _answer(msg: Message) -> list[Message]:
    return [CallResult(b"")]


def measure(models: int, replicas: int, churn_per_s: float, changes: int) -> Figures:
    rng = random.Random(models)
    names = [f"tenant{i}" for i in range(models)]
    held: dict[str, list[str]] = {f"r{i}": [] for i in range(replicas)}
    for i, name in enumerate(names):
        held[f"r{i % replicas}"].append(name)
    infos = [ReplicaInfo(rid, f"fake:{rid}", 1_000_000, list(ids)) for rid, ids in held.items()]
    router = Router("app/models", lambda address: FakeReplicaClient(_answer))
    publisher = Publisher()
    sink = _Sink()
    publisher.subscribe(sink, 1, KEY)  # type: ignore[arg-type]
    publisher.publish_target(KEY, DeploymentTarget(infos, -1))
    tracemalloc.start()
    for update in sink.pending:
        router.on_update(update)
    router_table_mb = tracemalloc.get_traced_memory()[0] / 2**20
    tracemalloc.stop()
    sink.pending.clear()
    full_bytes = len(msgspec.msgpack.encode(publisher.current(KEY)))

    records = {rid: dict.fromkeys(ids) for rid, ids in held.items()}
    spare = models
    sink.bytes = 0
    controller_s = router_s = 0.0
    for _ in range(changes):
        rid = f"r{rng.randrange(replicas)}"
        victim = held[rid].pop(rng.randrange(len(held[rid])))
        newcomer = f"tenant{spare}"
        spare += 1
        held[rid].append(newcomer)
        t0 = time.perf_counter()
        fold(records[rid], [newcomer], [victim])  # the controller's replica record
        publisher.publish_models(KEY, ModelDelta(rid, [newcomer], [victim]))
        t1 = time.perf_counter()
        for update in sink.pending:
            router.on_update(update)
        router_s += time.perf_counter() - t1
        controller_s += t1 - t0
        sink.pending.clear()
    delta_bytes = sink.bytes / changes

    picks = []
    for _ in range(20_000):
        model = names[rng.randrange(models)]
        t0 = time.perf_counter()
        slot = router._pick(model)
        picks.append((time.perf_counter() - t0) * 1e6)
        if slot is not None:
            router._release(slot)
    controller_us = controller_s / changes * 1e6
    return Figures(
        models=models,
        delta_bytes_per_s=delta_bytes * churn_per_s,
        full_bytes_per_s=full_bytes * churn_per_s,
        controller_us_per_change=controller_us,
        controller_cpu_share=controller_us * churn_per_s / 1e6,
        router_us_per_change=router_s / changes * 1e6,
        router_table_mb=router_table_mb,
        pick_p50_us=percentile(picks, 50),
        pick_p99_us=percentile(picks, 99),
    )


@dataclass
class Report:
    in_process: list[Figures]
    live: list[LiveFigures]


def main(argv: list[str] | None = None) -> Report:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=8)
    parser.add_argument("--churn", type=float, default=200.0, help="model loads per second")
    parser.add_argument("--changes", type=int, default=5000)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--duration", type=float, default=10.0, help="live: wrk seconds")
    parser.add_argument("--connections", type=int, default=16, help="live: wrk connections")
    parser.add_argument("--no-live", action="store_true", help="in process only")
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.sizes.split(",")]
    out = [measure(n, args.replicas, args.churn, args.changes) for n in sizes]
    print(
        f"\nplacement: {args.replicas} replicas, {args.churn:.0f} loads/s churn "
        f"(each evicts one), {args.changes} changes"
    )
    header = (
        f"{'models':>8} {'delta B/s':>10} {'full B/s':>12} {'ctrl us/chg':>11} "
        f"{'ctrl CPU':>8} {'router us/chg':>13} {'router MB':>9} {'pick p50 us':>11} "
        f"{'pick p99 us':>11}"
    )
    print(header)
    for f in out:
        print(
            f"{f.models:>8,} {f.delta_bytes_per_s:>10,.0f} {f.full_bytes_per_s:>12,.0f} "
            f"{f.controller_us_per_change:>11.1f} {f.controller_cpu_share:>8.2%} "
            f"{f.router_us_per_change:>13.2f} {f.router_table_mb:>9.1f} "
            f"{f.pick_p50_us:>11.2f} {f.pick_p99_us:>11.2f}"
        )
    if len(out) > 1:
        growth = out[-1].pick_p99_us / max(out[0].pick_p99_us, 1e-9)
        print(
            f"routing decision p99 at {out[-1].models:,} vs {out[0].models:,} models: "
            f"{growth:.2f}x; delta bytes vs whole tables: "
            f"{out[-1].delta_bytes_per_s / out[-1].full_bytes_per_s:.5f}x"
        )
    live: list[LiveFigures] = []
    if not args.no_live:
        if not wrk.available():
            print("\nlive: skipped, wrk is not installed")
        else:
            live = [measure_live(n, args.duration, args.connections) for n in sizes]
            print_live(live, args.duration, args.connections)
    return Report(out, live)


if __name__ == "__main__":
    main()
