"""Per-stream flow control for long-lived two-way streams (WebSockets).

A connection between two serval processes carries many streams, so its own
backpressure (the transport's write buffer) cannot slow down one socket without
slowing all. Each side of a socket stream may therefore have at most ``WS_WINDOW``
data frames the other side has not yet taken off its queue; the receiver hands credit
back (``WsCredit``) in batches of half a window as it takes them.
"""

from __future__ import annotations

import asyncio

from serval.transport.messages import WS_WINDOW


class SendWindow:
    """How many more data frames this side may send; ``acquire()`` waits for credit."""

    __slots__ = ("_left", "_waiter")

    def __init__(self, size: int = WS_WINDOW) -> None:
        self._left = size
        self._waiter: asyncio.Future[None] | None = None

    async def acquire(self) -> None:
        while self._left <= 0:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            await waiter
        self._left -= 1

    def grant(self, n: int) -> None:
        self._left += n
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def open_wide(self) -> None:
        """The stream is over: nothing may wait for credit any more."""
        self.grant(1 << 30)


class CreditReturn:
    """Counts the frames taken off the queue; says when to hand credit back."""

    __slots__ = ("_batch", "_taken")

    def __init__(self, size: int = WS_WINDOW) -> None:
        self._batch = max(1, size // 2)
        self._taken = 0

    def took_one(self) -> int:
        """Credit to send now (0 most of the time)."""
        self._taken += 1
        if self._taken < self._batch:
            return 0
        n, self._taken = self._taken, 0
        return n
