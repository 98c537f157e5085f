"""How a router talks to one replica.

``ReplicaClient`` is the abstract seam; ``SocketReplicaClient`` dials the replica's
address once and multiplexes every request over that connection;
``FakeReplicaClient`` answers in memory for unit tests of the router.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable

from serval.transport.address import dial
from serval.transport.connection import Connection, ReplyStream
from serval.transport.messages import ErrorReply, Message


class ReplicaClient(abc.ABC):
    """Sends requests to one replica; each request's replies come on a ReplyStream."""

    @abc.abstractmethod
    async def open(self, msg: Message) -> ReplyStream: ...

    @abc.abstractmethod
    def close(self) -> None: ...


class SocketReplicaClient(ReplicaClient):
    def __init__(self, address: str) -> None:
        self.address = address
        self._conn: Connection | None = None
        self._connecting: asyncio.Future[Connection] | None = None

    async def open(self, msg: Message) -> ReplyStream:
        conn = self._conn
        if conn is None or conn.closed:
            conn = await self._connect()
        return conn.open(msg)

    async def _connect(self) -> Connection:
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(dial(self.address))
        try:
            conn = await asyncio.shield(self._connecting)
        finally:
            if self._connecting is not None and self._connecting.done():
                self._connecting = None
        self._conn = conn
        return conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class _LoopbackConnection(Connection):
    """A Connection whose frames are handled in-process (for FakeReplicaClient)."""

    def __init__(self, answer: Callable[[Message], list[Message]]) -> None:
        super().__init__()
        self._answer = answer

    def send(self, stream_id: int, msg: Message) -> int:
        replies = self._answer(msg)
        loop = asyncio.get_running_loop()
        for reply in replies:
            loop.call_soon(self._dispatch, stream_id, reply)
        return 0


class FakeReplicaClient(ReplicaClient):
    """Answers every request with ``answer(msg)``; records what it was sent."""

    def __init__(self, answer: Callable[[Message], list[Message]]) -> None:
        self.sent: list[Message] = []
        self.closed = False

        def record(msg: Message) -> list[Message]:
            self.sent.append(msg)
            if self.closed:
                return [ErrorReply("unavailable", "ConnectionLost", "fake replica closed")]
            return answer(msg)

        self._conn = _LoopbackConnection(record)

    async def open(self, msg: Message) -> ReplyStream:
        return self._conn.open(msg)

    def close(self) -> None:
        self.closed = True
