"""Many models on the ray runtime: the Redis warm tier shared by replicas on different
nodes, and model-aware routing through every node's proxy."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.requests import Request

import serval
from serval.apps._tenants import generate, sample_rows
from tests.utils import free_port

HMAC_KEY = "ray-many-models-test-key"
TENANTS = [f"tenant{i}" for i in range(1, 7)]


@serval.deployment(num_replicas=1, graceful_shutdown_wait_loop_s=0.2)
class Scorer:
    def __init__(self, registry: str, redis_url: str) -> None:
        import serval.models

        serval.models.configure(registry=registry, warm=redis_url, hmac_key=HMAC_KEY)

    @serval.multiplexed(max_num_models_per_replica=16)
    async def get_model(self, model_id: str) -> Any:
        import serval.models
        from serval.apps._tenants import as_model

        return as_model(await serval.models.load(model_id))

    async def __call__(self, request: Request) -> dict[str, Any]:
        import os

        model = await self.get_model(serval.get_multiplexed_model_id())
        return {"node": os.environ["SERVAL_NODE_ID"], "n": len(model.predict(sample_rows(2)))}


@pytest.fixture
def cluster(serval_home: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Two Ray nodes on this machine (the second at its own loopback address), each
    with a custom resource naming it (to place a replica on either) and one ``slot``
    (to put one replica on each)."""
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    c = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 2,
            "include_dashboard": False,
            "resources": {"node_a": 1, "slot": 1},
        },
    )
    try:
        c.add_node(num_cpus=2, node_ip_address="127.0.0.2", resources={"node_b": 1, "slot": 1})
        c.wait_for_nodes()
        yield c
    finally:
        try:
            serval.shutdown()
        finally:
            c.shutdown()


def _on(node: str, replicas: int = 1) -> Any:
    return Scorer.options(  # type: ignore[attr-defined]
        num_replicas=replicas, ray_actor_options={"num_cpus": 1, "resources": {node: 0.5}}
    )


def _totals(app: str) -> dict[str, int]:
    stats = serval.api.model_stats(app)
    return {
        "hot_loads": sum(int(s["hot"]["loads"]) for s in stats.values()),
        "warm_hits": sum(int(s["warm"]["hits"]) for s in stats.values()),
        "cold_loads": sum(int(s["cold"]["loads"]) for s in stats.values()),
    }


@pytest.mark.ray
@pytest.mark.slow
def test_redis_warm_tier_is_shared_across_nodes_and_routing_is_model_aware(
    cluster: Any, redis_url: str, tmp_path: Any
) -> None:
    registry = str(tmp_path / "registry")
    for _ in generate(registry, len(TENANTS)):
        pass
    port = free_port()
    serval.start(
        http_options={"port": port, "location": "EveryNode"}, runtime="ray", address=cluster.address
    )

    import ray

    ip = {  # each node's proxy listens on that node's address
        name: n["NodeManagerAddress"]
        for n in ray.nodes()
        if n["Alive"]
        for name in ("node_a", "node_b")
        if name in n["Resources"]
    }

    def score(host: str, tenant: str) -> dict[str, Any]:
        r = httpx.get(
            f"http://{host}:{port}/m", headers={"serve_multiplexed_model_id": tenant}, timeout=60
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    # 1. On node A: every model comes from the registry, and lands in Redis.
    serval.run(_on("node_a").bind(registry, redis_url), name="m", route_prefix="/m")
    nodes_a = {score(ip["node_a"], t)["node"] for t in TENANTS}
    assert _totals("m")["cold_loads"] == len(TENANTS)

    serval.delete("m")

    # 2. A fresh replica on node B: every model comes from Redis, none from the registry.
    serval.run(_on("node_b").bind(registry, redis_url), name="m", route_prefix="/m")
    nodes_b = {score(ip["node_b"], t)["node"] for t in TENANTS}
    assert len(nodes_a) == len(nodes_b) == 1 and nodes_a != nodes_b
    totals = _totals("m")
    assert totals["cold_loads"] == 0 and totals["warm_hits"] == len(TENANTS), totals

    serval.delete("m")

    # 3. One replica per node: a cold model requested through both nodes' proxies at
    #    once is loaded by one replica only.
    spread = Scorer.options(  # type: ignore[attr-defined]
        num_replicas=2, ray_actor_options={"num_cpus": 1, "resources": {"slot": 1}}
    )
    serval.run(spread.bind(registry, redis_url), name="m", route_prefix="/m")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        hosts = [ip["node_a"], ip["node_b"]] * 8
        answers = list(pool.map(lambda h: score(h, "tenant3"), hosts))
    assert len({a["node"] for a in answers}) == 1  # every request went to the holder
    assert _totals("m")["hot_loads"] == 1
