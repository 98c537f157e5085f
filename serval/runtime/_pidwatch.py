"""Processes a controller did not start but adopted: watched by pid, through a pidfd.

After a controller restart its replicas and proxy are no longer its children (they
were reparented to the supervisor), so it cannot ``waitpid`` them. A pidfd
(``pidfd_open``, Linux 5.3+) becomes readable when the process exits and signals it
without the risk of a recycled pid; this module wraps one as a ProcessHandle.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import struct

from serval.runtime.base import ProcessHandle

UNKNOWN_EXIT = -1  # not our child: its exit status went to its parent (the supervisor)


def peer_pid(path: str) -> int | None:
    """The pid of the process listening on the unix socket ``path`` (SO_PEERCRED), or
    None when nobody listens there."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2.0)
        try:
            sock.connect(path)
        except OSError:
            return None
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, _uid, _gid = struct.unpack("3i", creds)
    return int(pid) or None


def cmdline(pid: int) -> list[str]:
    """The command line of ``pid`` ([] when it is gone or unreadable)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


class AdoptedProcess(ProcessHandle):
    """A running process another controller started, watched through its pidfd."""

    def __init__(self, name: str, address: str, pid: int, pidfd: int) -> None:
        self.name = name
        self.address = address
        self._pid = pid
        self._fd = pidfd
        self._exit: int | None = None
        self._done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().add_reader(pidfd, self._on_exit)

    @classmethod
    def open(cls, name: str, address: str, pid: int) -> AdoptedProcess | None:
        try:
            fd = os.pidfd_open(pid)
        except OSError:  # gone meanwhile
            return None
        return cls(name, address, pid, fd)

    def _on_exit(self) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._fd)
        os.close(self._fd)
        self._fd = -1
        self._exit = UNKNOWN_EXIT
        if not self._done.done():
            self._done.set_result(UNKNOWN_EXIT)

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def exit_code(self) -> int | None:
        return self._exit

    async def wait(self) -> int:
        return await asyncio.shield(self._done)

    def kill(self) -> None:
        if self._exit is None and self._fd >= 0:
            try:
                signal.pidfd_send_signal(self._fd, signal.SIGKILL)
            except ProcessLookupError:
                pass
