"""The local runtime: every replica and proxy is a subprocess on this machine.

The children share the controller's standard input, its lifeline: a pipe whose other
end the supervisor holds (``serval/controller/supervisor.py``). So they outlive a
controller that crashes (the next controller adopts them: replicas by the socket they
listen on, the proxy by its pid file) but not the supervisor: when it closes the pipe,
however it ends, they see end-of-file and exit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from serval import _secret, _statedir
from serval.runtime._pidwatch import AdoptedProcess, cmdline, peer_pid
from serval.runtime.base import CheckpointStore, ProcessHandle, Runtime
from serval.runtime.local_checkpoint import FileCheckpointStore
from serval.transport import auth
from serval.transport.address import unix_address

logger = logging.getLogger("serval.controller")

CHECKPOINT_FILE = "checkpoint.msgpack"


class LocalProcess(ProcessHandle):
    def __init__(self, name: str, address: str, proc: asyncio.subprocess.Process) -> None:
        self.name = name
        self.address = address
        self._proc = proc

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    @property
    def exit_code(self) -> int | None:
        return self._proc.returncode

    async def wait(self) -> int:
        return await self._proc.wait()

    def kill(self) -> None:
        if self._proc.returncode is None:
            try:
                self._proc.kill()
            except ProcessLookupError:
                pass


class LocalRuntime(Runtime):
    name = "local"

    def __init__(self, state_dir: str, **_options: object) -> None:
        self._state_dir = state_dir
        self._sockets = _statedir.ensure_private_dir(os.path.join(state_dir, "r"), tighten=True)
        self._procs: list[ProcessHandle] = []

    def checkpoint_store(self) -> CheckpointStore | None:
        return FileCheckpointStore(os.path.join(self._state_dir, CHECKPOINT_FILE))

    # -- replicas -------------------------------------------------------------------------

    async def start_replica(
        self, replica_id: str, *, env: dict[str, str], resources: dict[str, object]
    ) -> ProcessHandle:
        address = unix_address(os.path.join(self._sockets, f"{replica_id}.sock"))
        return await self._spawn(
            f"replica {replica_id}",
            address,
            [sys.executable, "-m", "serval.replica", address, replica_id],
            env,
            (),
        )

    async def adopt_replica(self, replica_id: str, address: str) -> ProcessHandle | None:
        """The replica listening at ``address`` (found by SO_PEERCRED on its socket)."""
        pid = _replica_pid(address.removeprefix("unix:"), replica_id)
        if pid is None:
            return None
        handle = AdoptedProcess.open(f"replica {replica_id}", address, pid)
        return self._track(handle) if handle is not None else None

    async def forget_replicas(self, keep: set[str]) -> None:
        """Stop the replicas a previous controller left that are not in ``keep``, and
        remove the sockets of the dead ones."""
        for entry in os.listdir(self._sockets):
            replica_id, ext = os.path.splitext(entry)
            if ext != ".sock" or replica_id in keep:
                continue
            path = os.path.join(self._sockets, entry)
            pid = _replica_pid(path, replica_id)
            if pid is not None:
                logger.info("stopping replica %s, unknown to the checkpoint", replica_id)
                _kill(pid)
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    # -- the proxy ------------------------------------------------------------------------

    async def start_proxy(
        self,
        name: str,
        args: Sequence[str],
        *,
        pass_fds: Sequence[int] = (),
        node: str = "",
        http: tuple[str, int] = ("", 0),
    ) -> ProcessHandle:
        """Adopt the proxy a previous controller started (its pid file names it), or
        start one."""
        pid_file = os.path.join(self._state_dir, f"{name}.pid")
        adopted = _adopt_proxy(pid_file, name, list(args))
        if adopted is not None:
            logger.info("adopted the running HTTP proxy %s (pid %d)", name, adopted.pid)
            return self._track(adopted)
        handle = await self._spawn(
            name, "", [sys.executable, "-m", "serval.proxy", *args], {}, pass_fds
        )
        _write_pid(pid_file, handle.pid)
        return handle

    # -- all ------------------------------------------------------------------------------

    async def _spawn(
        self,
        name: str,
        address: str,
        argv: list[str],
        env: dict[str, str],
        pass_fds: Sequence[int],
    ) -> ProcessHandle:
        # stdin is inherited: the supervisor's lifeline pipe (see the module docstring).
        with _secret.for_child(auth.instance_secret()) as (secret_env, secret_fd):
            proc = await asyncio.create_subprocess_exec(
                *argv,
                env={**os.environ, **env, **secret_env},
                pass_fds=(*pass_fds, secret_fd),
            )
        return self._track(LocalProcess(name, address, proc))

    def _track(self, handle: ProcessHandle) -> ProcessHandle:
        self._procs = [p for p in self._procs if p.exit_code is None]
        self._procs.append(handle)
        return handle

    async def shutdown(self) -> None:
        procs, self._procs = self._procs, []
        for p in procs:
            p.kill()
        for p in procs:
            try:
                await asyncio.wait_for(p.wait(), 5)
            except asyncio.TimeoutError:
                pass


def _replica_pid(path: str, replica_id: str) -> int | None:
    """The pid of replica ``replica_id`` listening on ``path``; None when it is gone
    (or something else listens there)."""
    pid = peer_pid(path)
    if pid is None:
        return None
    argv = cmdline(pid)
    if "serval.replica" not in argv or replica_id not in argv:
        return None
    return pid


def _adopt_proxy(pid_file: str, name: str, args: list[str]) -> AdoptedProcess | None:
    try:
        with open(pid_file) as f:
            pid = int(f.read().strip() or 0)
    except (OSError, ValueError):
        return None
    if pid <= 0:
        return None
    argv = cmdline(pid)
    controller = args[args.index("--controller") + 1] if "--controller" in args else ""
    if "serval.proxy" not in argv or controller not in argv:
        return None  # exited (its pid may belong to another process by now)
    return AdoptedProcess.open(name, "", pid)


def _write_pid(path: str, pid: int | None) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{pid}\n")
    os.replace(tmp, path)


def _kill(pid: int) -> None:
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        signal.pidfd_send_signal(fd, signal.SIGKILL)
    except ProcessLookupError:
        pass
    finally:
        os.close(fd)
