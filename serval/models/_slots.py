"""A bounded number of loads at once, where loads a live request waits on go first.

Background loads (prewarm, pin, refresh) queue behind every waiting live load. A
background load that a live request starts waiting on is promoted to the live queue.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

__all__ = ["LoadSlots", "Ticket"]


@dataclass(eq=False)
class Ticket:
    """One load's place in line."""

    live: bool
    waiter: asyncio.Future[None] | None = field(default=None, repr=False)


class LoadSlots:
    """At most ``limit`` holders; waiting live tickets are served before background ones.

    Example::

        ticket = Ticket(live=True)
        await slots.acquire(ticket)
        try:
            ...                  # load
        finally:
            slots.release()
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.limit = limit
        self.free = limit
        self._live: deque[Ticket] = deque()
        self._background: deque[Ticket] = deque()

    @property
    def waiting(self) -> int:
        return len(self._live) + len(self._background)

    async def acquire(self, ticket: Ticket) -> None:
        if self.free > 0 and not self.waiting:
            self.free -= 1
            return
        ticket.waiter = asyncio.get_running_loop().create_future()
        (self._live if ticket.live else self._background).append(ticket)
        try:
            await ticket.waiter
        except asyncio.CancelledError:
            if ticket.waiter.done() and not ticket.waiter.cancelled():
                self.release()  # the slot was handed to us as we were cancelled
            else:
                self._discard(ticket)
            raise
        finally:
            ticket.waiter = None

    def promote(self, ticket: Ticket) -> None:
        """A live request now waits on this ticket's load: move it to the live queue."""
        if ticket.live:
            return
        ticket.live = True
        if ticket in self._background:
            self._background.remove(ticket)
            self._live.append(ticket)

    def release(self) -> None:
        for queue in (self._live, self._background):
            while queue:
                ticket = queue.popleft()
                if ticket.waiter is not None and not ticket.waiter.done():
                    ticket.waiter.set_result(None)  # the slot passes straight to it
                    return
        self.free += 1

    def _discard(self, ticket: Ticket) -> None:
        for queue in (self._live, self._background):
            if ticket in queue:
                queue.remove(ticket)
