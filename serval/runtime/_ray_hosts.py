"""The Ray actors of the ray runtime. Each hosts one ordinary serval process as its child.

- ``ControllerHost`` (detached, named, restarted forever by Ray): runs
  ``python -m serval.controller`` on the head node, at a TCP address that stays the same
  across restarts (kept in Ray's KV), so proxies, handles and replicas reconnect to it.
- ``ReplicaHost`` (detached, named): one replica process, placed by the deployment's
  ``ray_actor_options``.
- ``ProxyHost`` (detached, named, pinned to a node): binds the HTTP port on its node and
  runs the proxy process on it.

Why a child process rather than serval running inside the actor: the processes are the
same programs the local runtime runs (their own uvloop, their own signal handling, no
Ray worker threads in the request path), and the child's standard input is a pipe from
its host, its lifeline: when Ray kills or loses the actor, the child exits too.
Detached actors outlive the controller process that created them, which is what lets a
restarted controller adopt the replicas and proxies instead of restarting them.

Ray is imported only in the actors' methods: this module is loaded by the ray runtime.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from serval import _secret, _statedir
from serval.exceptions import ServalError
from serval.runtime._sockets import bind_http, free_tcp_port

CONTROLLER_NAME = "serval-controller"
REPLICA_PREFIX = "serval-replica-"
PROXY_PREFIX = "serval-proxy-"
ADDRESS_KEY = b"controller_address"
CHECKPOINT_KEY = b"checkpoint"
SECRET_KEY = b"instance_secret"  # the handshake's secret (serval/transport/auth.py)
RESTART_PAUSE_S = 1.0  # before a host whose controller crashed asks Ray for a new one


def kv_namespace(ray_namespace: str) -> str:
    return f"serval:{ray_namespace}"


def instance_secret(ray_namespace: str | None = None) -> bytes:
    """The instance secret from Ray's KV (the driver that created serval put it there);
    ``ray_namespace`` defaults to this actor's."""
    import ray
    from ray.experimental import internal_kv

    namespace = ray_namespace or ray.get_runtime_context().namespace
    secret = internal_kv._internal_kv_get(SECRET_KEY, namespace=kv_namespace(namespace))
    if not secret:
        raise ServalError(
            f"the serval instance in Ray namespace {namespace!r} has no secret in Ray's KV "
            "(created by an older serval?): serval.shutdown() and start it again"
        )
    return bytes(secret)


def _spawn(
    argv: list[str], env: dict[str, str], secret: bytes, pass_fds: tuple[int, ...] = ()
) -> subprocess.Popen[bytes]:
    """Start a serval process with its lifeline on stdin and the secret on a pipe."""
    with _secret.for_child(secret) as (secret_env, secret_fd):
        return subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            pass_fds=(*pass_fds, secret_fd),
            env=_child_env({**env, **secret_env}),
        )


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    # A worker's job id must not leak into a child that connects to Ray as a driver.
    env = {k: v for k, v in os.environ.items() if k != "RAY_JOB_ID"}
    return {**env, **extra}


async def _wait_child(proc: subprocess.Popen[bytes] | None) -> int:
    while proc is not None and proc.poll() is None:
        await asyncio.sleep(0.1)
    return proc.returncode if proc is not None else 0


def _node_env() -> dict[str, str]:
    """Where this actor runs, for the process it starts (request routers' locality)."""
    import ray

    ctx = ray.get_runtime_context()
    env = {"SERVAL_NODE_ID": str(ctx.get_node_id())}
    try:
        zone = ctx.get_node_labels().get("ray.io/availability-zone")
    except Exception:  # older Ray: no node labels
        zone = None
    if isinstance(zone, str) and zone:
        env["SERVAL_AVAILABILITY_ZONE"] = zone
    return env


class ReplicaHost:
    """Runs one replica process on whichever node Ray placed this actor."""

    def __init__(self, replica_id: str, env: dict[str, str]) -> None:
        self.replica_id = replica_id
        self.env = env
        self.secret = instance_secret()
        self.proc: subprocess.Popen[bytes] | None = None
        self.address = ""

    def start(self) -> str:
        import ray

        if self.proc is not None:
            return self.address
        ip: str = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        self.address = f"tcp:{ip}:{free_tcp_port(ip)}"
        self.proc = _spawn(
            [sys.executable, "-m", "serval.replica", self.address, self.replica_id],
            {**self.env, **_node_env()},
            self.secret,
        )
        return self.address

    async def wait(self) -> int:
        return await _wait_child(self.proc)

    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None


class ProxyHost:
    """Binds the HTTP port on its node and runs a proxy process there.

    The socket belongs to the host, so a proxy process that crashed is restarted on the
    same socket (the kernel queues connections meanwhile).
    """

    def __init__(self, host: str, port: int, env: dict[str, str]) -> None:
        self.host = host  # "": this node's address
        self.port = port
        self.env = env
        self.secret = instance_secret()
        self.sock: socket.socket | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, args: list[str]) -> dict[str, Any]:
        """Start the proxy unless it runs; ``{"pid", "url"}`` or ``{"error"}``."""
        import ray

        if self.sock is None:
            host = self.host or ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
            try:
                self.sock = bind_http(host, self.port)
            except ServalError as exc:
                return {"error": str(exc)}
        if self.proc is None or self.proc.poll() is not None:
            fd = self.sock.fileno()
            self.proc = _spawn(
                [sys.executable, "-m", "serval.proxy", "--fd", str(fd), *args],
                {**self.env, **_node_env()},
                self.secret,
                (fd,),
            )
        host, port = self.sock.getsockname()[:2]
        return {"pid": self.proc.pid, "url": f"http://{host}:{port}"}

    async def wait(self) -> int:
        return await _wait_child(self.proc)


class ControllerHost:
    """Runs the controller process; Ray restarts this actor (and so the controller)
    whenever it dies, and the new controller adopts what the old one started."""

    def __init__(self, ray_namespace: str, http_options: str, env: dict[str, str]) -> None:
        import ray
        from ray.experimental import internal_kv

        from serval._driver import read_ready

        kv = kv_namespace(ray_namespace)
        ip: str = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        stored = internal_kv._internal_kv_get(ADDRESS_KEY, namespace=kv)
        address = stored.decode() if stored else ""
        if not address.startswith(f"tcp:{ip}:"):  # first start, or a new head node
            address = f"tcp:{ip}:{free_tcp_port(ip)}"
            internal_kv._internal_kv_put(ADDRESS_KEY, address.encode(), namespace=kv)
        home = os.path.join(tempfile.gettempdir(), f"serval-ray-{os.getuid()}")
        state_dir = _statedir.prepare_state_dir(home, os.path.join(home, ray_namespace))
        read_fd, write_fd = os.pipe()
        argv = [
            *(sys.executable, "-m", "serval.controller", "--address", address),
            *("--state-dir", state_dir, "--http-options", http_options, "--runtime", "ray"),
            *("--ray-address", ray.get_runtime_context().gcs_address),
            *("--ray-namespace", ray_namespace, "--ready-fd", str(write_fd)),
        ]
        try:
            self.proc = _spawn(argv, env, instance_secret(ray_namespace), (write_fd,))
        finally:
            os.close(write_fd)
        try:
            self.report = read_ready(read_fd, self.proc)
        finally:
            os.close(read_fd)
        if self.report.get("ok"):
            threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        # The controller exits 0 only after serval.shutdown(); any other exit is a crash:
        # end this actor so that Ray starts a new one, which adopts the replicas.
        if self.proc.wait() != 0:
            time.sleep(RESTART_PAUSE_S)
            os._exit(1)

    def info(self) -> dict[str, Any]:
        return self.report
