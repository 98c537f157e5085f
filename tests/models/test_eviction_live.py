"""The default eviction policy on the live system: a Zipf trace played over HTTP through
two real replicas and model-aware routing loads what the simulator says it would.

Each model id is routed to one replica (the one holding it, else its rendezvous pick),
so each replica's cache sees the sub-trace of its models; replaying those sub-traces
through the same policy and budget offline predicts the loads the replicas report.
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any

import httpx
import numpy as np
from starlette.requests import Request

import serval
from serval.models.eviction import Budget, TraceRequest, make_policy, replay

HEADER = "serve_multiplexed_model_id"
MB = 1_000_000
MODELS = 60
REQUESTS = 1_200
BUDGET = 40 * MB  # per replica: about a fifth of the models' bytes


def size_of(model_id: str) -> int:
    """1-12 MB, fixed per model (a seeded draw from its number)."""
    rng = np.random.default_rng(int(model_id.removeprefix("m")))
    return int(rng.integers(1, 13)) * MB


class Blob:
    """A stand-in model that declares its size (nothing to allocate)."""

    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes

    def __serval_nbytes__(self) -> int:
        return self.nbytes


@serval.deployment(num_replicas=2)
class Tenants:
    @serval.multiplexed(max_num_models_per_replica=-1, max_bytes=BUDGET)
    async def get_model(self, model_id: str) -> Blob:
        return Blob(size_of(model_id))

    async def __call__(self, request: Request) -> dict[str, Any]:
        model = await self.get_model(serval.get_multiplexed_model_id())
        return {"pid": os.getpid(), "bytes": model.nbytes}


def zipf_trace(seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, MODELS + 1) ** 1.1
    ranks = rng.permutation(MODELS)  # popularity independent of size
    picks = rng.choice(MODELS, size=REQUESTS, p=weights / weights.sum())
    return [f"m{ranks[i]}" for i in picks]


def predicted_loads(by_replica: dict[int, list[str]], policy: str) -> list[int]:
    """Loads per replica, sorted, replaying each replica's sub-trace offline."""
    return sorted(
        replay(
            [TraceRequest(k, size_of(k)) for k in keys],
            Budget(make_policy(policy), max_bytes=BUDGET),
            loads_in_budget=True,  # as the replicas' caches: a load's bytes count too
        ).misses
        for keys in by_replica.values()
    )


def test_replicas_load_what_the_simulator_predicts(serve: str) -> None:
    serval.run(Tenants.bind(), name="tenants", route_prefix="/t")
    trace = zipf_trace(seed=3)
    by_replica: dict[int, list[str]] = defaultdict(list)
    served_by: dict[str, set[int]] = defaultdict(set)
    with httpx.Client(base_url=serve, timeout=60) as client:
        for model_id in trace:
            r = client.post("/t", headers={HEADER: model_id})
            assert r.status_code == 200, r.text
            assert r.json()["bytes"] == size_of(model_id)
            pid = r.json()["pid"]
            by_replica[pid].append(model_id)
            served_by[model_id].add(pid)

    # Model-aware routing: both replicas serve, and each model lives on one of them.
    assert len(by_replica) == 2
    assert all(len(pids) == 1 for pids in served_by.values()), served_by

    stats = serval.api.model_stats("tenants")
    live = sorted(s["hot"]["loads"] for s in stats.values())
    assert len(live) == 2
    assert all(s["hot"]["bytes_used"] <= BUDGET for s in stats.values())
    expected = predicted_loads(by_replica, "popularity")
    slack = [max(3, e // 20) for e in expected]  # 5%: timing never enters the policy
    assert all(abs(a - e) <= s for a, e, s in zip(live, expected, slack, strict=True)), (
        live,
        expected,
    )
    # The comparison can tell policies apart: LRU would have loaded clearly more.
    lru = predicted_loads(by_replica, "lru")
    assert sum(lru) > sum(expected) + 2 * sum(slack), (lru, expected)
