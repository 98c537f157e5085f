"""The ray runtime's own behaviour (the core end-to-end tests also run on it)."""

from __future__ import annotations

import pytest

import serval
from serval.exceptions import ConfigError, ServalError
from tests.utils import free_port


@pytest.mark.ray
def test_unreachable_ray_address_is_a_clear_error(serval_home: str) -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(ServalError, match=f"cannot reach the Ray cluster at '127.0.0.1:{port}'"):
        serval.start(http_options={"port": free_port()}, runtime="ray", address=f"127.0.0.1:{port}")


def test_unknown_runtime_is_refused(serval_home: str) -> None:
    with pytest.raises(ConfigError, match="unknown runtime 'kubernetes'"):
        serval.start(runtime="kubernetes")


def test_importing_serval_does_not_import_ray() -> None:
    import subprocess
    import sys

    code = "import serval, sys; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@serval.deployment(num_replicas=3, ray_actor_options={"num_cpus": 1})
def where(request: object) -> str:
    import os

    return os.environ["SERVAL_NODE_ID"]


@pytest.mark.ray
@pytest.mark.slow
def test_replicas_spread_over_nodes_and_every_node_has_a_proxy(
    serval_home: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three nodes on this machine, each at its own loopback address (as separate
    machines would be), a proxy on each (``location="EveryNode"``, each listening on its
    node's address), each routing to replicas on all three nodes."""
    import httpx
    import ray
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    try:
        for ip in ("127.0.0.2", "127.0.0.3"):
            cluster.add_node(num_cpus=1, node_ip_address=ip)
        cluster.wait_for_nodes()
        port = free_port()
        serval.start(
            http_options={"port": port, "location": "EveryNode"},
            runtime="ray",
            address=cluster.address,
        )
        serval.run(where.bind(), name="where", route_prefix="/where")
        node_ips = {n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]}
        assert len(node_ips) == 3
        proxies = serval.status().proxies
        assert len(proxies) == 3 and set(proxies.values()) == {"HEALTHY"}, proxies
        with httpx.Client(timeout=30) as c:
            for ip in sorted(node_ips):
                nodes = {c.get(f"http://{ip}:{port}/where").text for _ in range(60)}
                assert len(nodes) == 3, f"the proxy on {ip} should reach 3 nodes, saw {nodes}"
        serval.shutdown()
    finally:
        cluster.shutdown()


@pytest.mark.ray
@pytest.mark.slow
def test_a_cluster_of_another_ray_version_is_a_clear_error(
    serval_home: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real cluster, whose recorded Ray version we rewrite in its GCS (the record Ray's
    own version check reads when a driver connects): Ray raises its mismatch error, and
    serval translates it into one that names both versions. (Installing a second Ray
    version to start a genuinely older cluster is not practical in this suite.)"""
    import json

    import ray
    from ray._private import ray_constants
    from ray._raylet import GcsClient
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    try:
        gcs = GcsClient(address=cluster.address)
        key, namespace = b"CLUSTER_METADATA", ray_constants.KV_NAMESPACE_CLUSTER
        metadata = json.loads(gcs.internal_kv_get(key, namespace=namespace))
        metadata["ray_version"] = "2.9.3"
        gcs.internal_kv_put(key, json.dumps(metadata).encode(), True, namespace=namespace)
        expected = (
            rf"runs Ray 2\.9\.3 on Python .*, but this process has Ray "
            rf"{ray.__version__.replace('.', '[.]')} on Python"
        )
        with pytest.raises(ConfigError, match=expected):
            serval.start(http_options={"port": free_port()}, runtime="ray", address=cluster.address)
        assert not ray.is_initialized()
    finally:
        cluster.shutdown()


SECOND_DRIVER = """
import sys, serval
serval.start(runtime="ray", address=sys.argv[1])
print(sorted(serval.status().applications))
print(serval.get_app_handle("where").remote(None).result(timeout_s=30))
"""


@pytest.mark.ray
@pytest.mark.slow
def test_a_second_driver_attaches_to_the_same_serval(ray_serve: str) -> None:
    import subprocess
    import sys

    import httpx
    import ray

    serval.run(where.options(num_replicas=1).bind(), name="where", route_prefix="/where")
    node = httpx.get(f"{ray_serve}/where", timeout=30).text
    gcs = ray.get_runtime_context().gcs_address
    out = subprocess.run(
        [sys.executable, "-c", SECOND_DRIVER, gcs],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.splitlines()[-2:] == ["['where']", node]
    # The second driver ended without serval.shutdown(): serval keeps serving.
    assert httpx.get(f"{ray_serve}/where", timeout=30).text == node


@pytest.mark.ray
@pytest.mark.slow
def test_a_taken_http_port_is_a_clear_error_and_leaves_nothing_running(
    serval_home: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    import ray

    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=1, include_dashboard=False, namespace="serval-t")
    try:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            with pytest.raises(ServalError, match=f"port {port} on 127.0.0.1 is already in use"):
                serval.start(http_options={"port": port}, runtime="ray")
        names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)]
        assert names == [], f"serval actors left behind: {names}"
    finally:
        ray.shutdown()


@serval.deployment(ray_actor_options={"num_cpus": 1}, health_check_period_s=0.5)
def node_of(request: object) -> str:
    import os

    return os.environ["SERVAL_NODE_ID"]


@pytest.mark.ray
@pytest.mark.slow
def test_replicas_of_a_node_that_leaves_are_rescheduled_elsewhere(
    serval_home: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The head has no CPU for replicas, so the replica lands on a worker node; that
    node leaves the cluster; the replica comes back on the other worker node and the
    head's proxy answers from it."""
    import httpx
    from ray.cluster_utils import Cluster

    from tests.utils import wait_for

    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False}
    )
    try:
        first = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        port = free_port()
        serval.start(http_options={"port": port}, runtime="ray", address=cluster.address)
        serval.run(node_of.bind(), name="n", route_prefix="/n")
        url = f"http://127.0.0.1:{port}/n"
        before = httpx.get(url, timeout=30).text
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        cluster.remove_node(first)

        def elsewhere() -> bool:
            try:
                r = httpx.get(url, timeout=10)
            except httpx.HTTPError:
                return False
            return r.status_code == 200 and r.text != before

        wait_for(elsewhere, timeout_s=90, what="the replica to come back on the other node")
        assert serval.status().applications["n"].deployments["node_of"].replica_states == {
            "RUNNING": 1
        }
        serval.shutdown()
    finally:
        cluster.shutdown()


@serval.deployment(
    ray_actor_options={"num_cpus": 1},
    placement_group_bundles=[{"CPU": 1}, {"CPU": 1}],
    placement_group_strategy="STRICT_SPREAD",
    graceful_shutdown_wait_loop_s=0.1,
)
def grouped(request: object) -> str:
    import os

    return os.environ["SERVAL_NODE_ID"]


def test_placement_group_options_are_validated_at_decoration() -> None:
    with pytest.raises(ValueError, match="placement_group_strategy"):
        grouped.options(placement_group_strategy="SOMEWHERE")
    with pytest.raises(ValueError, match="placement_group_bundles"):
        grouped.options(placement_group_bundles=[])


@pytest.mark.ray
@pytest.mark.slow
def test_a_replica_with_placement_group_bundles_reserves_them(
    serval_home: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """STRICT_SPREAD over two nodes: the replica's group holds one bundle on each; it is
    removed with the replica."""
    import httpx
    import ray
    from ray.cluster_utils import Cluster

    from tests.utils import wait_for

    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        port = free_port()
        serval.start(http_options={"port": port}, runtime="ray", address=cluster.address)
        serval.run(grouped.bind(), name="g", route_prefix="/g")
        assert httpx.get(f"http://127.0.0.1:{port}/g", timeout=30).status_code == 200

        def groups() -> list[dict[str, object]]:
            return [
                g
                for g in ray.util.placement_group_table().values()
                if str(g["name"]).startswith("serval-pg-") and g["state"] == "CREATED"
            ]

        (group,) = groups()
        assert group["strategy"] == "STRICT_SPREAD" and len(group["bundles"]) == 2  # type: ignore[arg-type]
        assert len(set(group["bundles_to_node_id"].values())) == 2  # type: ignore[attr-defined]
        serval.delete("g")
        wait_for(lambda: not groups(), timeout_s=30, what="the placement group to be removed")
        serval.shutdown()
    finally:
        cluster.shutdown()
