"""The Runtime interface: start, watch and stop the processes of a serval instance."""

from __future__ import annotations

import abc
from collections.abc import Sequence


class ProcessHandle(abc.ABC):
    """A started replica or proxy process."""

    name: str
    address: str  # where its framed server listens (a proxy: its HTTP URL, or "")

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


class CheckpointStore(abc.ABC):
    """Where the controller keeps its checkpoint (one opaque value)."""

    location = "the checkpoint store"  # how error messages name it

    @abc.abstractmethod
    def load(self) -> bytes | None: ...

    @abc.abstractmethod
    def save(self, data: bytes) -> None: ...

    def quarantine(self) -> str | None:
        """Set an unreadable checkpoint aside for inspection; returns where it went
        (None: it was dropped, or cannot be kept)."""
        return None


class MemoryCheckpointStore(CheckpointStore):
    """A checkpoint store in this process's memory (tests)."""

    def __init__(self) -> None:
        self.data: bytes | None = None
        self.saves = 0

    def load(self) -> bytes | None:
        return self.data

    def save(self, data: bytes) -> None:
        self.data = data
        self.saves += 1


class Runtime(abc.ABC):
    """Places replica and proxy processes (subprocesses here, Ray actors on a cluster)."""

    name: str

    @abc.abstractmethod
    async def start_replica(
        self, replica_id: str, *, env: dict[str, str], resources: dict[str, object]
    ) -> ProcessHandle: ...

    async def adopt_replica(self, replica_id: str, address: str) -> ProcessHandle | None:
        """The running replica a previous controller started, or None when it is gone
        (or this runtime cannot adopt)."""
        return None

    async def forget_replicas(self, keep: set[str]) -> None:
        """Stop replicas a previous controller left that are not in ``keep``."""
        return None

    async def proxy_nodes(self, location: str) -> list[str]:
        """The nodes that should run a proxy for ``location`` ("HeadOnly", "EveryNode")."""
        return [""]

    @abc.abstractmethod
    async def start_proxy(
        self,
        name: str,
        args: Sequence[str],
        *,
        pass_fds: Sequence[int] = (),
        node: str = "",
        http: tuple[str, int] = ("", 0),
    ) -> ProcessHandle:
        """Start (or adopt) the proxy on ``node``. ``pass_fds`` carries a listening socket
        the controller bound; without one the runtime binds ``http`` (host "": the node's
        address) and adds ``--fd``."""

    def checkpoint_store(self) -> CheckpointStore | None:
        """Where the controller's state survives the controller (None: nowhere)."""
        return None

    @abc.abstractmethod
    async def shutdown(self) -> None:
        """Stop everything this runtime started that is still running."""
