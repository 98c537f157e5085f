"""A client that goes away cancels its request.

uvicorn does not cancel the application when the client disconnects: ``receive()``
returns ``http.disconnect``. :func:`cancel_on_disconnect` listens for it while the
request is forwarded and, if the client leaves before the response is complete,
cancels the request's task: the router takes the request out of its queue or tells
the replica to stop (a ``Cancel`` frame), and the replica's slot is free at once.
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


class _Watch:
    __slots__ = ("complete", "gone", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.complete = False  # the last body message was handed to the server
        self.gone = False  # the client left first; we cancelled the task

    def on_receive(self, listener: asyncio.Task[dict[str, Any]]) -> None:
        if listener.cancelled() or listener.exception() is not None:
            return
        if listener.result().get("type") == "http.disconnect" and not self.complete:
            self.gone = True
            self.task.cancel()


async def cancel_on_disconnect(
    run: Callable[[Send], Awaitable[int]], receive: Receive, send: Send, request_id: str
) -> int:
    """``await run(send)`` (the request's forwarding, after its body was read),
    cancelled when the client disconnects first; returns the status sent, or
    :data:`CLIENT_CLOSED`."""
    task = asyncio.current_task()
    assert task is not None
    watch = _Watch(task)

    async def tracked(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            watch.complete = True
        await send(message)

    listener: asyncio.Task[dict[str, Any]] = asyncio.ensure_future(receive())
    listener.add_done_callback(watch.on_receive)
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
        listener.cancel()
