"""The Runtime interface: start, watch and stop the processes of a serval instance."""

from __future__ import annotations

import abc
from collections.abc import Sequence


class ProcessHandle(abc.ABC):
    """A started replica or proxy process."""

    name: str
    address: str  # where its framed server listens ("" for proxies)

    @property
    @abc.abstractmethod
    def pid(self) -> int | None: ...

    @property
    @abc.abstractmethod
    def exit_code(self) -> int | None:
        """None while it runs."""

    @abc.abstractmethod
    async def wait(self) -> int:
        """Wait for the process to exit; return its exit code."""

    @abc.abstractmethod
    def kill(self) -> None: ...


class Runtime(abc.ABC):
    """Places replica and proxy processes (subprocesses here, Ray actors on a cluster)."""

    name: str

    @abc.abstractmethod
    async def start_replica(
        self, replica_id: str, *, env: dict[str, str], resources: dict[str, object]
    ) -> ProcessHandle: ...

    @abc.abstractmethod
    async def start_proxy(
        self, name: str, args: Sequence[str], *, pass_fds: Sequence[int] = ()
    ) -> ProcessHandle: ...

    @abc.abstractmethod
    async def shutdown(self) -> None:
        """Stop everything this runtime started that is still running."""
