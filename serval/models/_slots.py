"""Which model loads may run now: bounded by memory, not by a small fixed count.

A load that only waits on I/O costs nothing but the bytes it will hold, so loads
overlap as long as *bytes being loaded plus bytes resident* fit in the cache's memory
budget; ``limit`` (``max_concurrent_loads``) is only an explicit cap a user may add.
Each load reserves its estimated size (:class:`Ticket`); the cache answers whether a
reservation fits (evicting resident models to make room when it can). A load always
starts when nothing else is loading, so one model the estimate says is too big still
makes progress (the cache rejects models larger than the whole budget itself).

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

from serval.exceptions import BackPressureError

__all__ = ["LoadSlots", "SizeRecord", "Ticket", "machine_budget"]

Fits = Callable[[int], bool]  # whether this many bytes in flight fit beside the resident ones


@dataclass(eq=False)
class Ticket:
    """One load's place in line and the bytes it reserves while it runs."""

    live: bool
    nbytes: int | None = 0  # None: not known yet (asked again when it could start)
    key: str = ""  # the model, for the estimate
    waiter: asyncio.Future[None] | None = field(default=None, repr=False)


class LoadSlots:
    """Admits loads while their reserved bytes fit (and ``limit``, if any, allows).

    Example::

        slots = LoadSlots(None, fits=lambda reserved: resident + reserved <= budget)
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
        fits: Fits | None = None,
        estimate: Callable[[str], int | None] | None = None,
        max_waiting: int | None = None,
    ) -> None:
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be >= 1 or None, got {limit}")
        self.limit = limit
        self.max_waiting = max_waiting
        self.running = 0
        self.reserved = 0  # bytes the running loads reserved
        self._fits = fits
        self._estimate = estimate
        self._live: deque[Ticket] = deque()
        self._background: deque[Ticket] = deque()

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
        ticket.waiter = asyncio.get_running_loop().create_future()
        (self._live if ticket.live else self._background).append(ticket)
        try:
            await ticket.waiter
        except asyncio.CancelledError:
            if ticket.waiter.done() and not ticket.waiter.cancelled():
                self.release(ticket)  # admitted as we were cancelled: give it back
            else:
                self._discard(ticket)
                self.wake()  # the head may have left: the next one may fit
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

    def release(self, ticket: Ticket) -> None:
        """A load admitted by :meth:`acquire` is over (its model is in the cache, or
        gone): its bytes are no longer reserved."""
        self.running -= 1
        self.reserved -= ticket.nbytes or 0
        self.wake()

    def wake(self) -> None:
        """Admit waiting loads, in order, while they fit (call when room appeared)."""
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
        fits = self._fits is None or self._fits(self.reserved + ticket.nbytes)
        return fits or self.running == 0  # progress: one load at a time always runs

    def _start(self, ticket: Ticket) -> None:
        self.running += 1
        self.reserved += ticket.nbytes or 0

    def _discard(self, ticket: Ticket) -> None:
        for queue in (self._live, self._background):
            if ticket in queue:
                queue.remove(ticket)


class SizeRecord:
    """The measured size of recently loaded models (bounded), and the largest seen:
    what a new load of a model reserves before it is measured again; and the version
    each last load produced.

    Example::

        sizes.record("tenant7", 120_000_000)
        sizes.estimate("tenant7")   # 120_000_000; an id never seen: the largest so far
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self.largest: int | None = None
        self._sizes: OrderedDict[str, int] = OrderedDict()
        self._versions: OrderedDict[str, tuple[str | None, str | None]] = OrderedDict()

    def get(self, model_id: str) -> int | None:
        return self._sizes.get(model_id)

    def record(self, model_id: str, size: int) -> None:
        self._sizes[model_id] = size
        self._sizes.move_to_end(model_id)
        if len(self._sizes) > self.capacity:
            self._sizes.popitem(last=False)
        self.largest = size if self.largest is None else max(self.largest, size)

    def forget(self, model_id: str) -> None:
        self._sizes.pop(model_id, None)

    def record_version(self, model_id: str, version: str | None, alias: str | None) -> None:
        self._versions[model_id] = (version, alias)
        self._versions.move_to_end(model_id)
        if len(self._versions) > self.capacity:
            self._versions.popitem(last=False)

    def version(self, model_id: str) -> tuple[str | None, str | None]:
        """``(version, alias)`` of the last load of ``model_id`` (``None`` unknown)."""
        return self._versions.get(model_id, (None, None))

    def estimate(self, model_id: str) -> int | None:
        """Its last size, else the largest measured; ``None`` before any measurement."""
        known = self._sizes.get(model_id)
        return known if known is not None else self.largest


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
