"""Joining the Ray cluster, and finding (or creating) the serval that lives on it.

``connect`` is the one place where serval calls ``ray.init``, and so the one place where
Ray's connection errors become serval errors (an unreachable address, a Ray or Python
version that differs from the cluster's).
"""

from __future__ import annotations

import os
import re
import socket
from typing import Any

from serval.exceptions import ConfigError, ServalError
from serval.runtime._ray_hosts import (
    ADDRESS_KEY,
    CHECKPOINT_KEY,
    CONTROLLER_NAME,
    PROXY_PREFIX,
    REPLICA_PREFIX,
    SECRET_KEY,
    ControllerHost,
    instance_secret,
    kv_namespace,
)

CONTROLLER_START_TIMEOUT_S = 120.0

# Ray's words (ray._private.utils.check_version_info): "Version mismatch: The cluster was
# started with:\n    Ray: X\n    Python: Y\nThis process on ... was started with: ..."
_VERSIONS = re.compile(r"Ray: (\S+)\s+Python: (\S+)")


def ray_namespace(serval_namespace: str) -> str:
    return f"serval-{serval_namespace}"


def connect(address: str | None, namespace: str) -> bool:
    """Connect this process to Ray (a new local instance when ``address`` is empty);
    return whether Ray was already initialised here."""
    import ray

    if ray.is_initialized():
        return True
    if address:
        _check_reachable(address)
    try:
        ray.init(
            address=address or None,
            namespace=namespace,
            include_dashboard=False,
            log_to_driver=True,
            configure_logging=False,
            num_cpus=None if address else (os.cpu_count() or 1),
        )
    except Exception as exc:
        ray.shutdown()  # a failed init can leave this process half connected
        raise translate_init_error(exc, address) from exc
    return False


def translate_init_error(exc: Exception, address: str | None) -> ServalError:
    """A serval error for what ``ray.init`` raised."""
    import ray

    message = str(exc)
    if "Version mismatch" in message:
        found = _VERSIONS.findall(message)
        if len(found) >= 2:
            (cluster_ray, cluster_py), (local_ray, local_py) = found[0], found[1]
        else:  # Ray changed its wording: say what we know
            cluster_ray, cluster_py = "unknown", "unknown"
            local_ray, local_py = ray.__version__, "this Python"
        return ConfigError(
            f"the Ray cluster at {address or 'auto'!r} runs Ray {cluster_ray} on Python "
            f"{cluster_py}, but this process has Ray {local_ray} on Python {local_py}: "
            f"install the cluster's versions here (pip install 'ray=={cluster_ray}') or "
            "connect to a cluster of your versions"
        )
    return ConfigError(f"cannot connect to the Ray cluster at {address!r}: {message}")


def _check_reachable(address: str) -> None:
    """Fail fast with a clear message: Ray itself retries an unreachable address for a
    long time before it gives up."""
    if address == "auto":
        return
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=3):
            pass
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot reach the Ray cluster at {address!r}: {exc}. Pass 'auto' for the cluster "
            "on this machine, 'host:port' of its GCS, or 'ray://host:10001' (Ray client)"
        ) from None


def head_node_id() -> str:
    import ray

    for node in ray.nodes():  # type: ignore[no-untyped-call]
        if node["Alive"] and "node:__internal_head__" in node["Resources"]:
            return str(node["NodeID"])
    return str(ray.get_runtime_context().get_node_id())


def find_controller(namespace: str) -> Any | None:
    import ray

    try:
        return ray.get_actor(CONTROLLER_NAME, namespace=namespace)
    except ValueError:
        return None


def load_secret(namespace: str, *, create: bool) -> bytes:
    """The instance secret of the serval in ``namespace`` (with ``create``, a new one
    unless it has one already), kept in Ray's KV: readable by whoever may use the
    cluster, never by the network at large."""
    from ray.experimental import internal_kv

    from serval.transport import auth

    if create:
        internal_kv._internal_kv_put(
            SECRET_KEY, auth.new_secret(), overwrite=False, namespace=kv_namespace(namespace)
        )
    return instance_secret(namespace)


def start_controller(namespace: str, http_options: str, env: dict[str, str]) -> Any:
    """The controller actor of ``namespace``: the running one, or a new one on the head."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return (
        ray.remote(ControllerHost)
        .options(
            name=CONTROLLER_NAME,
            namespace=namespace,
            lifetime="detached",
            get_if_exists=True,
            max_restarts=-1,
            max_task_retries=-1,
            num_cpus=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(head_node_id(), soft=False),
        )
        .remote(namespace, http_options, env)
    )


def controller_info(actor: Any) -> dict[str, Any]:
    """The controller's ready report (waits while Ray restarts it)."""
    import ray

    try:
        info: dict[str, Any] = ray.get(actor.info.remote(), timeout=CONTROLLER_START_TIMEOUT_S)
    except Exception as exc:
        raise ServalError(f"the serval controller actor failed: {exc}") from exc
    return info


def teardown(namespace: str, *, disconnect: bool) -> None:
    """Kill the controller actor and whatever serval actors remain; forget the state;
    with ``disconnect``, leave Ray (stopping the local instance this process started)."""
    import ray
    from ray.experimental import internal_kv

    if not ray.is_initialized():
        return

    names = [
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["namespace"] == namespace
    ]
    ordered = sorted(names, key=lambda n: n != CONTROLLER_NAME)  # the controller first
    for name in ordered:
        if name == CONTROLLER_NAME or name.startswith((REPLICA_PREFIX, PROXY_PREFIX)):
            try:
                ray.kill(ray.get_actor(name, namespace=namespace), no_restart=True)
            except Exception:  # already gone
                pass
    kv = kv_namespace(namespace)
    for key in (CHECKPOINT_KEY, ADDRESS_KEY, SECRET_KEY):
        internal_kv._internal_kv_del(key, namespace=kv)
    if disconnect:
        ray.shutdown()
