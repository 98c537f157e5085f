"""Which model loads may run now: bounded by memory, not by a small fixed count.

A load that only waits on I/O costs nothing but the bytes it will hold, so loads
overlap as long as *bytes being loaded plus bytes resident* fit in the cache's memory
budget; ``limit`` (``max_concurrent_loads``) is only an explicit cap a user may add.
Each load reserves its estimated size (:class:`Ticket`) before it starts, and the cache
answers whether a reservation fits — making room by evicting when its policy allows
(:mod:`serval.models._resident`). A load that learns mid-way that it needs more
(:meth:`LoadSlots.grow`: the store knows a model's file size once it has fetched it)
waits for that room before it deserializes.

Loads a live request waits on go before background ones (prewarm, pin, refresh); a
background load a live request starts waiting on is promoted. Live loads beyond
``max_waiting`` are refused with :class:`~serval.exceptions.BackPressureError`
(HTTP 503 + ``Retry-After``) instead of queueing without end.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from serval.exceptions import BackPressureError

__all__ = ["LoadSlots", "Room", "SizeRecord", "Ticket", "machine_budget"]


@dataclass(eq=False)
class Ticket:
    """One load's place in line and the bytes it reserves while it runs."""

    live: bool
    nbytes: int | None = 0  # None: not known yet (asked again when it could start)
    key: str = ""  # the model, for the estimate
    force: bool = False  # pinned, or a refresh of a model held: kept whatever it evicts
    keep: bool = True  # False: room was made for it alone; served, then not kept
    waiter: asyncio.Future[None] | None = field(default=None, repr=False)
    growing_to: int = 0  # bytes a blocked grow() waits for


# Whether ``reserved`` bytes of loads in flight fit beside the resident models, making
# room if the cache may: (reserved, the ticket asking, its size, alone) -> fits now.
# ``alone``: no other load is in flight that could end and make room.
Room = Callable[[int, Ticket, int, bool], bool]


class LoadSlots:
    """Admits loads while their reserved bytes fit (and ``limit``, if any, allows).

    Example::

        def room(reserved: int, ticket: Ticket, size: int, alone: bool) -> bool:
            return resident_bytes + reserved <= budget

        slots = LoadSlots(None, room=room)
        ticket = Ticket(live=True, nbytes=estimate)
        await slots.acquire(ticket)
        try:
            ...                  # load
        finally:
            slots.release(ticket)
    """

    def __init__(
        self,
        limit: int | None = None,
        *,
        room: Room | None = None,
        estimate: Callable[[str], int | None] | None = None,
        max_waiting: int | None = None,
        used: Callable[[], int] | None = None,
    ) -> None:
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be >= 1 or None, got {limit}")
        self.limit = limit
        self.max_waiting = max_waiting
        self.running = 0
        self.reserved = 0  # bytes the running loads reserved
        self.peak = 0  # the most resident (``used``) plus reserved bytes ever were
        self._used = used
        self._room = room
        self._estimate = estimate
        self._live: deque[Ticket] = deque()
        self._background: deque[Ticket] = deque()
        self._growing: deque[Ticket] = deque()  # running loads waiting to reserve more

    @property
    def waiting(self) -> int:
        return len(self._live) + len(self._background)

    async def acquire(self, ticket: Ticket) -> None:
        if not self.waiting and self._admits(ticket):
            self._start(ticket)
            return
        if ticket.live and self.max_waiting is not None and len(self._live) >= self.max_waiting:
            raise BackPressureError(
                f"{len(self._live)} model loads are already waiting for memory "
                f"({self.running} running, {self.reserved} bytes reserved); retry shortly",
                retry_after_s=1.0,
            )
        queue = self._live if ticket.live else self._background
        try:
            await self._wait(ticket, queue)
        except asyncio.CancelledError:
            if ticket.waiter is not None and ticket.waiter.done() and not ticket.waiter.cancelled():
                self.release(ticket)  # admitted as we were cancelled: give it back
            raise
        finally:
            ticket.waiter = None

    async def grow(self, ticket: Ticket, nbytes: int) -> None:
        """A running load now expects ``nbytes`` in all (more than it reserved): wait
        until that fits. When every load in flight waits to grow, the oldest goes on."""
        if nbytes <= (ticket.nbytes or 0):
            return
        if not self._grows(ticket, nbytes, alone=self.running - len(self._growing) <= 1):
            ticket.growing_to = nbytes
            try:
                await self._wait(ticket, self._growing)
            finally:
                ticket.growing_to = 0
                ticket.waiter = None

    async def _wait(self, ticket: Ticket, queue: deque[Ticket]) -> None:
        ticket.waiter = asyncio.get_running_loop().create_future()
        queue.append(ticket)
        if queue is self._growing and self.running - len(self._growing) == 0:
            self.wake()  # every load in flight now waits to grow: one must go on
        try:
            await ticket.waiter
        except asyncio.CancelledError:
            if not ticket.waiter.done() or ticket.waiter.cancelled():
                self._discard(ticket)
                self.wake()  # the head may have left: the next one may fit
            raise

    def promote(self, ticket: Ticket) -> None:
        """A live request now waits on this ticket's load: move it to the live queue."""
        if ticket.live:
            return
        ticket.live = True
        if ticket in self._background:
            self._background.remove(ticket)
            self._live.append(ticket)

    def release(self, ticket: Ticket) -> None:
        """A load admitted by :meth:`acquire` is over (its model is in the cache, or
        gone): its bytes are no longer reserved."""
        self.running -= 1
        self.reserved -= ticket.nbytes or 0
        self.wake()

    def settle(self, ticket: Ticket) -> None:
        """The load's model is measured and about to enter the cache: its reservation
        ends here (not at :meth:`release`), so its bytes are not counted twice."""
        self.reserved -= ticket.nbytes or 0
        ticket.nbytes = 0

    def note_peak(self) -> None:
        """Resident or reserved bytes grew: keep :attr:`peak` up to date."""
        if self._used is not None:
            self.peak = max(self.peak, self._used() + self.reserved)

    def wake(self) -> None:
        """Admit waiting loads, in order, while they fit (call when room appeared).
        Running loads that wait to grow go first: they already hold a slot."""
        while self._growing:
            ticket = self._growing[0]
            if ticket.waiter is None or ticket.waiter.done():
                self._growing.popleft()
                continue
            stuck = self.running - len(self._growing) == 0  # no other load can make room
            if not self._grows(ticket, ticket.growing_to, alone=stuck):
                break
            self._growing.popleft()
            ticket.waiter.set_result(None)
        for queue in (self._live, self._background):
            while queue:
                ticket = queue[0]
                if ticket.waiter is None or ticket.waiter.done():
                    queue.popleft()
                    continue
                if not self._admits(ticket):
                    return  # in order: a big load is not overtaken forever by small ones
                queue.popleft()
                self._start(ticket)
                ticket.waiter.set_result(None)

    def _admits(self, ticket: Ticket) -> bool:
        if self.limit is not None and self.running >= self.limit:
            return False
        if ticket.nbytes is None and self._estimate is not None:
            ticket.nbytes = self._estimate(ticket.key)  # a load that ended may have told
        if ticket.nbytes is None:
            return self.running == 0  # nothing measured yet: runs alone
        if self._room is None:
            return True
        return self._room(self.reserved + ticket.nbytes, ticket, ticket.nbytes, self.running == 0)

    def _grows(self, ticket: Ticket, nbytes: int, *, alone: bool) -> bool:
        extra = nbytes - (ticket.nbytes or 0)
        if self._room is not None and not self._room(self.reserved + extra, ticket, nbytes, alone):
            return False
        self.reserved += extra
        ticket.nbytes = nbytes
        self.note_peak()
        return True

    def _start(self, ticket: Ticket) -> None:
        self.running += 1
        self.reserved += ticket.nbytes or 0
        self.note_peak()

    def _discard(self, ticket: Ticket) -> None:
        for queue in (self._live, self._background, self._growing):
            if ticket in queue:
                queue.remove(ticket)


class SizeRecord:
    """What a load of a model reserves before it is measured again: the bytes its last
    load took at most (its measured size, or what the load said it needed while it
    ran, whichever is larger), else the most any load took; bounded to ``capacity``
    models. Also the version each last load produced.

    Example::

        sizes.record("tenant7", 120_000_000)
        sizes.estimate("tenant7")   # 120_000_000; an id never seen: the largest so far
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self.largest: int | None = None
        self._sizes: OrderedDict[str, int] = OrderedDict()  # measured, in memory
        self._needs: OrderedDict[str, int] = OrderedDict()  # the most a load of it held
        self._versions: OrderedDict[str, tuple[str | None, str | None]] = OrderedDict()

    def get(self, model_id: str) -> int | None:
        """Its measured size in memory (``None``: not measured lately)."""
        return self._sizes.get(model_id)

    def record(self, model_id: str, size: int) -> None:
        _put(self._sizes, model_id, size, self.capacity)
        self._grow_largest(size)

    def record_need(self, model_id: str, nbytes: int) -> None:
        """A load of ``model_id`` said it holds ``nbytes`` at once while it runs."""
        _put(self._needs, model_id, nbytes, self.capacity)
        self._grow_largest(nbytes)

    def forget(self, model_id: str) -> None:
        self._sizes.pop(model_id, None)
        self._needs.pop(model_id, None)

    def record_version(self, model_id: str, version: str | None, alias: str | None) -> None:
        _put(self._versions, model_id, (version, alias), self.capacity)

    def version(self, model_id: str) -> tuple[str | None, str | None]:
        """``(version, alias)`` of the last load of ``model_id`` (``None`` unknown)."""
        return self._versions.get(model_id, (None, None))

    def estimate(self, model_id: str) -> int | None:
        """What its last load took at most, else the largest any load took; ``None``
        before any measurement."""
        size, need = self._sizes.get(model_id), self._needs.get(model_id)
        if size is None and need is None:
            return self.largest
        return max(size or 0, need or 0)

    def _grow_largest(self, nbytes: int) -> None:
        self.largest = nbytes if self.largest is None else max(self.largest, nbytes)


def _put(table: OrderedDict[str, Any], key: str, value: Any, capacity: int) -> None:
    table[key] = value
    table.move_to_end(key)
    if len(table) > capacity:
        table.popitem(last=False)


@functools.cache
def machine_budget() -> int:
    """The bytes loads may use in a cache without ``max_bytes``: half of this machine's
    memory (or of the cgroup's limit, when it is lower)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            text = f.read().strip()
        if text.isdigit():
            total = min(total, int(text))
    except OSError:
        pass
    return total // 2
