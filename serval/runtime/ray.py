"""The ray runtime: Ray places replica processes; serval's protocol carries the requests.

Each replica is a small Ray actor, ``ReplicaHost``, placed with the deployment's
``ray_actor_options`` (``num_cpus``, ``num_gpus``, ``memory``, ``resources``,
``runtime_env``). The host starts the same replica process the local runtime runs, as
its child, listening on TCP at the node's address, and the routers talk to it
directly: no Ray task per request. The child's stdin is a pipe from the host, so
when Ray kills or loses the actor, the replica exits too. Proxies run beside the
controller, as in the local runtime.

Ray is imported only here, and only when this runtime is chosen.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from serval.exceptions import ConfigError
from serval.runtime.base import ProcessHandle, Runtime
from serval.runtime.local import LocalRuntime


class ReplicaHost:
    """Runs one replica process on whichever node Ray placed this actor."""

    def __init__(self, replica_id: str, env: dict[str, str]) -> None:
        self.replica_id = replica_id
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        import ray

        ip: str = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        with socket.socket() as sock:
            sock.bind((ip, 0))
            port = sock.getsockname()[1]
        address = f"tcp:{ip}:{port}"
        node_id = ray.get_runtime_context().get_node_id()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "serval.replica", address, self.replica_id],
            stdin=subprocess.PIPE,
            env={**os.environ, **self.env, "SERVAL_NODE_ID": node_id},
        )
        return address

    async def wait(self) -> int:
        while self.proc is not None and self.proc.poll() is None:
            await asyncio.sleep(0.1)
        return self.proc.returncode if self.proc is not None else 0

    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None


class RayProcess(ProcessHandle):
    def __init__(self, name: str, address: str, actor: Any, pid: int | None) -> None:
        self.name = name
        self.address = address
        self._actor = actor
        self._pid = pid
        self._exit: int | None = None

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def exit_code(self) -> int | None:
        return self._exit

    async def wait(self) -> int:
        try:
            code = int(await self._actor.wait.remote())
        except Exception:  # the actor died (killed, node lost): the replica is gone
            code = -1
        self._exit = code
        return code

    def kill(self) -> None:
        import ray

        try:
            ray.kill(self._actor, no_restart=True)
        except Exception:
            pass


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


class RayRuntime(Runtime):
    name = "ray"

    def __init__(self, state_dir: str, address: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("the ray runtime needs Ray: pip install 'serval[ray]'") from None
        self._local = LocalRuntime(state_dir)
        self._actors: list[RayProcess] = []
        if not ray.is_initialized():
            if address:
                _check_reachable(address)
            try:
                ray.init(
                    address=address,
                    namespace="serval",
                    include_dashboard=False,
                    log_to_driver=True,
                    configure_logging=False,
                    num_cpus=None if address else (os.cpu_count() or 1),
                )
            except Exception as exc:
                raise ConfigError(
                    f"cannot connect to the Ray cluster at {address!r}: {exc}"
                ) from exc
        self._host_cls: Any = ray.remote(ReplicaHost)

    async def start_replica(
        self, replica_id: str, *, env: dict[str, str], resources: dict[str, object]
    ) -> ProcessHandle:
        options: dict[str, Any] = {"num_cpus": resources.get("num_cpus", 0)}
        for key in ("num_gpus", "memory", "resources", "runtime_env", "accelerator_type"):
            if key in resources:
                options[key] = resources[key]
        actor: Any = self._host_cls.options(name=f"serval-replica-{replica_id}", **options).remote(
            replica_id, env
        )
        address = await actor.start.remote()
        pid = await actor.pid.remote()
        handle = RayProcess(f"replica {replica_id}", address, actor, pid)
        self._actors.append(handle)
        return handle

    async def start_proxy(
        self, name: str, args: Sequence[str], *, pass_fds: Sequence[int] = ()
    ) -> ProcessHandle:
        return await self._local.start_proxy(name, args, pass_fds=pass_fds)

    async def shutdown(self) -> None:
        import ray

        for actor in self._actors:
            actor.kill()
        self._actors.clear()
        await self._local.shutdown()
        if ray.is_initialized():
            ray.shutdown()
