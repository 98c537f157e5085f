"""The ray runtime: Ray places serval's processes; serval's protocol carries the requests.

Every process is the child of a small detached Ray actor (``runtime/_ray_hosts.py``):
the controller on the head node, each replica where its ``ray_actor_options``
(``num_cpus``, ``num_gpus``, ``memory``, ``resources``, ``runtime_env``) place it, and a
proxy on the head node or on every node. Routers talk to replicas directly over TCP: no
Ray task per request. The controller's state is checkpointed in Ray's KV, so when Ray
restarts a dead controller it adopts the running replicas and proxies by their actor
names instead of starting new ones.

Ray is imported only here, and only when this runtime is chosen.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from serval._env import read_env
from serval.exceptions import ConfigError, ServalError
from serval.runtime._ray_cluster import connect, head_node_id
from serval.runtime._ray_hosts import (
    CHECKPOINT_KEY,
    PROXY_PREFIX,
    REPLICA_PREFIX,
    ProxyHost,
    ReplicaHost,
    kv_namespace,
)
from serval.runtime.base import CheckpointStore, ProcessHandle, Runtime

PLACEMENT_GROUP_PREFIX = "serval-pg-"  # + replica id

_ACTOR_OPTIONS = ("num_gpus", "memory", "resources", "runtime_env", "accelerator_type")


def _proxy_env() -> dict[str, str]:
    token = read_env().admin_token  # in the environment, not on command lines
    return {"SERVAL_ADMIN_TOKEN": token} if token else {}


class RayProcess(ProcessHandle):
    """A process hosted by a Ray actor; it ends when the actor ends."""

    def __init__(
        self, name: str, address: str, actor: Any, pid: int | None, group: Any = None
    ) -> None:
        self.name = name
        self.address = address
        self._actor = actor
        self._pid = pid
        self._group = group  # its placement group, if it has one
        self._exit: int | None = None

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def exit_code(self) -> int | None:
        return self._exit

    async def wait(self) -> int:
        if self._exit is None:
            try:
                code = int(await self._actor.wait.remote())
            except Exception:  # the actor died (killed, node lost): its process is gone
                code = -1
            self._exit = code
            self._remove_group()
        return self._exit

    def kill(self) -> None:
        import ray

        try:
            ray.kill(self._actor, no_restart=True)
        except Exception:
            pass
        self._remove_group()

    def _remove_group(self) -> None:
        group, self._group = self._group, None
        if group is not None:
            from ray.util import remove_placement_group

            try:
                remove_placement_group(group)
            except Exception:  # already gone with its cluster
                pass


class RayKVStore(CheckpointStore):
    """The controller's checkpoint in Ray's internal KV (held by the GCS)."""

    def __init__(self, namespace: str) -> None:
        self._kv = kv_namespace(namespace)

    def load(self) -> bytes | None:
        from ray.experimental import internal_kv

        value: bytes | None = internal_kv._internal_kv_get(CHECKPOINT_KEY, namespace=self._kv)
        return value

    def save(self, data: bytes) -> None:
        from ray.experimental import internal_kv

        internal_kv._internal_kv_put(CHECKPOINT_KEY, data, overwrite=True, namespace=self._kv)


class RayRuntime(Runtime):
    name = "ray"

    def __init__(self, state_dir: str, address: str | None = None, namespace: str = "serval"):
        try:
            import ray
        except ImportError:
            raise ConfigError("the ray runtime needs Ray: pip install 'serval[ray]'") from None
        self.namespace = namespace
        connect(address, namespace)
        self._ray = ray
        self._replica_cls: Any = ray.remote(ReplicaHost)
        self._proxy_cls: Any = ray.remote(ProxyHost)
        self._actors: list[RayProcess] = []

    def checkpoint_store(self) -> CheckpointStore | None:
        return RayKVStore(self.namespace)

    # -- replicas -------------------------------------------------------------------------

    async def start_replica(
        self, replica_id: str, *, env: dict[str, str], resources: dict[str, object]
    ) -> ProcessHandle:
        options: dict[str, Any] = {"num_cpus": resources.get("num_cpus", 0)}
        options.update({k: resources[k] for k in _ACTOR_OPTIONS if k in resources})
        group = await self._placement_group(replica_id, resources)
        if group is not None:
            from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

            # The replica runs in the first bundle; what it starts may use the others.
            options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                placement_group=group,
                placement_group_bundle_index=0,
                placement_group_capture_child_tasks=True,
            )
        actor: Any = self._replica_cls.options(
            name=f"{REPLICA_PREFIX}{replica_id}",
            namespace=self.namespace,
            lifetime="detached",  # it outlives a controller that dies: the next one adopts it
            **options,
        ).remote(replica_id, env)
        address = await actor.start.remote()
        pid = await actor.pid.remote()
        return self._track(RayProcess(f"replica {replica_id}", address, actor, pid, group))

    async def _placement_group(self, replica_id: str, resources: dict[str, object]) -> Any:
        """The replica's own placement group (``placement_group_bundles``), reserved
        before the replica starts; removed when the replica ends."""
        bundles = resources.get("placement_group_bundles")
        if not bundles:
            return None
        from ray.util.placement_group import placement_group

        group = placement_group(
            bundles,
            strategy=str(resources.get("placement_group_strategy") or "PACK"),
            name=f"{PLACEMENT_GROUP_PREFIX}{replica_id}",
            lifetime="detached",  # like the replica: it outlives a controller that dies
        )
        await group.ready()
        return group

    async def adopt_replica(self, replica_id: str, address: str) -> ProcessHandle | None:
        try:
            actor = self._ray.get_actor(f"{REPLICA_PREFIX}{replica_id}", namespace=self.namespace)
            pid = await actor.pid.remote()
        except Exception:  # gone while there was no controller
            return None
        group = self._named_group(f"{PLACEMENT_GROUP_PREFIX}{replica_id}")
        return self._track(RayProcess(f"replica {replica_id}", address, actor, pid, group))

    def _named_group(self, name: str) -> Any:
        try:
            return self._ray.util.get_placement_group(name)
        except ValueError:  # it has none
            return None

    async def forget_replicas(self, keep: set[str]) -> None:
        """Kill the replica actors the checkpoint does not know (started or stopping when
        the last controller died)."""
        for info in self._ray.util.list_named_actors(all_namespaces=True):
            name = info["name"]
            if info["namespace"] != self.namespace or not name.startswith(REPLICA_PREFIX):
                continue
            if name.removeprefix(REPLICA_PREFIX) not in keep:
                try:
                    self._ray.kill(self._ray.get_actor(name, namespace=self.namespace))
                except Exception:
                    pass
                group = self._named_group(
                    PLACEMENT_GROUP_PREFIX + name.removeprefix(REPLICA_PREFIX)
                )
                if group is not None:
                    self._ray.util.remove_placement_group(group)

    # -- proxies --------------------------------------------------------------------------

    async def proxy_nodes(self, location: str) -> list[str]:
        if location != "EveryNode":
            return [head_node_id()]
        nodes = await asyncio.to_thread(self._ray.nodes)
        return sorted(str(n["NodeID"]) for n in nodes if n["Alive"])

    async def start_proxy(
        self,
        name: str,
        args: Sequence[str],
        *,
        pass_fds: Sequence[int] = (),
        node: str = "",
        http: tuple[str, int] = ("", 0),
    ) -> ProcessHandle:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        actor: Any = self._proxy_cls.options(
            name=f"{PROXY_PREFIX}{node}",
            namespace=self.namespace,
            lifetime="detached",
            get_if_exists=True,  # a restarted controller adopts the running proxy
            num_cpus=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
        ).remote(*http, _proxy_env())
        started: dict[str, Any] = await actor.start.remote(list(args))
        if "error" in started:
            self._ray.kill(actor, no_restart=True)
            raise ServalError(started["error"])
        return self._track(RayProcess(name, started["url"], actor, started["pid"]))

    # -- all ------------------------------------------------------------------------------

    def _track(self, handle: RayProcess) -> RayProcess:
        self._actors = [a for a in self._actors if a.exit_code is None]
        self._actors.append(handle)
        return handle

    async def shutdown(self) -> None:
        for actor in self._actors:
            actor.kill()
        self._actors.clear()
        if self._ray.is_initialized():
            self._ray.shutdown()
