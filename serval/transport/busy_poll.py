"""Polling for the next message for a moment instead of going to sleep, at low load.

Why: a core that goes idle between two requests pays for it on the way back. The
wake-up is an interrupt sent across cores (on a virtual machine, a trip through the
hypervisor), and the code that runs next finds caches and branch predictors cold:
measured on the 2-core VM serval is benchmarked on, a scikit-learn ``predict()`` that
takes 110 µs on a busy core takes 190 µs right after a 400 µs sleep. With one request
at a time, serval's proxy and the model's replica each go to sleep and are woken twice
per request; a single-process server that never blocks pays none of it.

How: :meth:`BusyPoll.arm` starts a callback that re-schedules itself with
``call_soon``, so the event loop polls its sockets without blocking (epoll with a zero
timeout) and gives way on every pass (``sched_yield``: any other runnable process on
the core goes first). A poll ends when a request arrives, when more requests are in
flight than ``max_in_flight``, or when the window has passed since it was armed; the
loop then sleeps as before. Only requests that come one at a time are polled for: an
arming that finds more than one request received since the previous one (requests
overlapped: the process is under load, and its cores are better left to the work)
does not poll.

- A replica arms when it has answered its last request in flight
  (``max_in_flight=0``): it waits, awake, for the next one. It never polls while a
  request runs (user code in a thread keeps the interpreter to itself).
- The proxy arms when a request arrives and when it has answered one, and polls while
  at most one request is in flight (``max_in_flight=1``): it waits, awake, for the
  replica's answer and then for the client's next request. Under load (more in flight)
  it never polls: its core is busy anyway and the replicas need the rest.

Cost: at most one window of a core per arming, when requests are further apart than
the window; nothing under load, nothing when idle. The window is
``SERVAL_BUSY_POLL_US`` microseconds (:data:`~serval._env.DEFAULT_BUSY_POLL_US`; 0 turns
polling off). Time spent polling and how each poll ended (``caught``: a request arrived
or the load rose; ``expired``: the window ran out) are the ``serval_busy_poll_seconds``
and ``serval_busy_polls`` counters, by ``component`` (``proxy``, ``replica``).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Protocol

__all__ = ["BusyPoll", "Load"]

_now = time.perf_counter
_give_way = getattr(os, "sched_yield", lambda: None)


class Load(Protocol):
    """What a poller reads of its process (the proxy app, the replica server)."""

    in_flight: int  # requests being answered now
    total: int  # requests received so far


class BusyPoll:
    """One process's poller (module docs); ``window_s`` 0 never polls."""

    __slots__ = (
        "_armed_at",
        "_deadline",
        "_load",
        "_loop",
        "_polling",
        "_scheduled",
        "_started",
        "_total",
        "caught",
        "expired",
        "max_in_flight",
        "seconds",
        "window_s",
    )

    def __init__(self, load: Load, window_s: float, max_in_flight: int = 0) -> None:
        self.window_s = window_s
        self.max_in_flight = max_in_flight
        self._load = load
        self._loop: asyncio.AbstractEventLoop | None = None
        self._polling = False  # a poll is on
        self._scheduled = False  # its callback is in the loop's queue
        self._started = 0.0  # when the current poll began
        self._deadline = 0.0  # when it gives up
        self._total = 0  # requests received when it began
        self._armed_at = 0  # requests received at the last arming
        self.caught = 0  # polls that ended with a request
        self.expired = 0  # polls the window ended
        self.seconds = 0.0  # time spent polling

    @property
    def polling(self) -> bool:
        return self._polling

    def arm(self) -> None:
        """Poll from now for the window (a request arrived or was answered)."""
        load = self._load
        if self.window_s <= 0 or load.in_flight > self.max_in_flight:
            return
        total = load.total
        overlapped = total - self._armed_at > 1
        self._armed_at = total
        if overlapped:  # more than one request since the last arming: not one at a time
            return
        now = _now()
        if self._polling:  # a request arrived or was answered during this poll
            self._end(now, caught=True)
        self._polling = True
        self._started = now
        self._deadline = now + self.window_s
        self._total = total
        if not self._scheduled:
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.get_running_loop()
            self._scheduled = True
            loop.call_soon(self._tick)

    def _tick(self) -> None:
        self._scheduled = False
        if not self._polling:
            return
        load = self._load
        now = _now()
        if load.in_flight > self.max_in_flight or load.total != self._total:
            self._end(now, caught=True)
        elif now >= self._deadline:
            self._end(now, caught=False)
        else:
            _give_way()
            assert self._loop is not None
            self._scheduled = True
            self._loop.call_soon(self._tick)

    def _end(self, now: float, *, caught: bool) -> None:
        self._polling = False
        self.seconds += now - self._started
        if caught:
            self.caught += 1
        else:
            self.expired += 1
