"""The local runtime: every replica and proxy is a subprocess on this machine.

Each child's standard input is a pipe from the controller, its lifeline: when the
controller goes away, however it goes, the children see end-of-file and exit.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence

from serval import _secret, _statedir
from serval.runtime.base import ProcessHandle, Runtime
from serval.transport import auth
from serval.transport.address import unix_address


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
        self._sockets = _statedir.ensure_private_dir(os.path.join(state_dir, "r"), tighten=True)
        self._procs: list[LocalProcess] = []

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

    async def start_proxy(
        self,
        name: str,
        args: Sequence[str],
        *,
        pass_fds: Sequence[int] = (),
        node: str = "",
        http: tuple[str, int] = ("", 0),
    ) -> ProcessHandle:
        return await self._spawn(
            name, "", [sys.executable, "-m", "serval.proxy", *args], {}, pass_fds
        )

    async def _spawn(
        self,
        name: str,
        address: str,
        argv: list[str],
        env: dict[str, str],
        pass_fds: Sequence[int],
    ) -> LocalProcess:
        with _secret.for_child(auth.instance_secret()) as (secret_env, secret_fd):
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                env={**os.environ, **env, **secret_env},
                pass_fds=(*pass_fds, secret_fd),
            )
        handle = LocalProcess(name, address, proc)
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
