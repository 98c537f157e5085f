"""A client that goes away cancels its request.

uvicorn does not cancel the application when the client disconnects: ``receive()``
returns ``http.disconnect``. :func:`cancel_on_disconnect` listens for it while the
request is forwarded and, if the client leaves before the response is complete,
cancels the request's task: the router takes the request out of its queue or tells
the replica to stop (a ``Cancel`` frame), and the replica's slot is free at once.

Listening costs a task per request, so it starts only for requests still out at two
successive ticks of a sweep every ``SWEEP_S`` (one timer for the whole proxy): most
requests are answered before and cost a set insertion; a client that leaves is noticed
at most ``2 * SWEEP_S`` later.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

logger = logging.getLogger("serval.proxy")

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

CLIENT_CLOSED = 499  # the status recorded (never sent) for a request whose client left
SWEEP_S = 0.05


class _Watch:
    """Listens for the client's disconnect on behalf of one request's task."""

    __slots__ = ("complete", "gone", "listener", "receive", "seen", "task")

    def __init__(self, task: asyncio.Task[Any], receive: Receive) -> None:
        self.task = task
        self.receive = receive
        self.listener: asyncio.Future[dict[str, Any]] | None = None
        self.seen = False  # out at one sweep already: the next one starts listening
        self.complete = False  # the response's last message was handed to the server
        self.gone = False  # the client left first: we cancelled the task

    def listen(self) -> None:
        if not self.complete:
            self.listener = asyncio.ensure_future(self.receive())
            self.listener.add_done_callback(self._on_receive)

    def _on_receive(self, listener: asyncio.Future[dict[str, Any]]) -> None:
        if listener.cancelled() or listener.exception() is not None or self.complete:
            return
        if listener.result().get("type") == "http.disconnect":
            self.gone = True
            self.task.cancel()

    def stop(self) -> None:
        self.complete = True
        if self.listener is not None:
            self.listener.cancel()


class _Sweep:
    """The requests out on one event loop, and the timer that looks at them."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.active: set[_Watch] = set()
        self.ticking = False

    def add(self, watch: _Watch) -> None:
        self.active.add(watch)
        if not self.ticking:
            self.ticking = True
            self.loop.call_later(SWEEP_S, self.tick)

    def tick(self) -> None:
        for watch in self.active:
            if watch.seen:
                if watch.listener is None:
                    watch.listen()
            else:
                watch.seen = True
        if self.active:
            self.loop.call_later(SWEEP_S, self.tick)
        else:
            self.ticking = False


_sweeps: dict[asyncio.AbstractEventLoop, _Sweep] = {}


def _sweep() -> _Sweep:
    loop = asyncio.get_running_loop()
    sweep = _sweeps.get(loop)
    if sweep is None:
        for old in [other for other in _sweeps if other.is_closed()]:
            del _sweeps[old]
        sweep = _sweeps[loop] = _Sweep(loop)
    return sweep


async def cancel_on_disconnect(
    run: Callable[[Send], Awaitable[int]], receive: Receive, send: Send, request_id: str
) -> int:
    """``await run(send)`` (the request's forwarding, after its body was read),
    cancelled when the client disconnects first; returns the status sent, or
    :data:`CLIENT_CLOSED`."""
    task = asyncio.current_task()
    assert task is not None
    watch = _Watch(task, receive)

    async def tracked(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            watch.complete = True  # uvicorn answers receive() with a disconnect from now
        await send(message)

    sweep = _sweep()
    sweep.add(watch)
    try:
        return await run(tracked)
    except asyncio.CancelledError:
        if not watch.gone:
            raise
        uncancel = getattr(task, "uncancel", None)  # Python >= 3.11 counts cancellations
        if uncancel is not None:
            uncancel()
        logger.info("client went away: request %s cancelled", request_id)
        return CLIENT_CLOSED
    finally:
        sweep.active.discard(watch)
        watch.stop()
