"""A request placed on a replica (:class:`Assignment`) and the replica's slot in its
router (``_Slot``: its connection, in-flight count and health), which the assignment
holds until the request's last reply arrives or it is closed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from serval.request_router.types import PendingRequest
from serval.router.replica_client import ReplicaClient
from serval.transport.connection import ReplyStream
from serval.transport.messages import FINAL, Message, ReplicaInfo

if TYPE_CHECKING:
    from serval.router.custom import CustomChoice
    from serval.router.router import Router

__all__ = ["Assignment", "CustomAssignment"]


@dataclass(eq=False)
class _Slot:
    info: ReplicaInfo
    client: ReplicaClient
    in_flight: int = 0
    down_until: float = 0.0
    removed: bool = False
    served: int = field(default=0)

    @property
    def replica_id(self) -> str:
        return self.info.replica_id

    @property
    def capacity(self) -> int:
        return self.info.max_ongoing_requests


class Assignment:
    """A request placed on a replica: its first reply, then (when streaming) the rest.

    Releases the replica's slot when the last reply arrives or ``close()`` is called.
    """

    __slots__ = ("_released", "_router", "_slot", "first", "stream")

    def __init__(self, router: Router, slot: _Slot, stream: ReplyStream, first: Message) -> None:
        self._router = router
        self._slot = slot
        self.stream = stream
        self.first = first
        self._released = False
        if isinstance(first, FINAL):
            self._release()

    @property
    def replica_id(self) -> str:
        return self._slot.info.replica_id

    async def receive(self) -> Message:
        msg = await self.stream.receive()
        if isinstance(msg, FINAL):
            self._release()
        return msg

    def close(self) -> None:
        """Stop early (client gone, timeout): tell the replica and free the slot."""
        if not self._released:
            self.stream.cancel()
            self._release()

    def _release(self) -> None:
        if not self._released:
            self._released = True
            self._router._release(self._slot)


class CustomAssignment(Assignment):
    """An Assignment that tells the user's request router when the request was routed
    and when it completed (``on_request_routed``, ``on_request_completed``)."""

    __slots__ = ("_custom", "_pending", "_routed")

    def __init__(
        self,
        router: Router,
        slot: _Slot,
        stream: ReplyStream,
        first: Message,
        custom: CustomChoice,
        pending: PendingRequest,
    ) -> None:
        self._custom = custom
        self._pending = pending
        self._routed = False
        super().__init__(router, slot, stream, first)  # may release at once (one reply)
        custom.routed(pending, slot, self)
        self._routed = True
        if self._released:
            custom.completed(slot, pending)

    def _release(self) -> None:
        if not self._released:
            super()._release()
            if self._routed:
                self._custom.completed(self._slot, self._pending)
