"""WebSockets through the proxy: one socket, one stream to one replica, frames both ways.

The client's ``websocket.connect`` becomes a ``WsConnect`` that the deployment's router
places like a request (the socket holds that replica's slot while it is open). The
replica's ``WsAccept`` is relayed as ``websocket.accept``; its refusal (a ``WsClose``
before accepting) as a closed handshake (HTTP 403, as uvicorn answers it). Then two
pumps run until either side closes: client → replica (``WsData``, ``WsClose``) and
replica → client. A replica that dies mid-socket closes the client's socket with 1011.
Each direction is flow-controlled per socket (:mod:`serval.transport.flow`): the proxy
credits the replica as the client takes its messages, and sends the client's messages
only as the app takes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from serval.exceptions import ServalError
from serval.observability.ingress import WebSocketMetrics
from serval.router.assignment import Assignment
from serval.router.router import Router
from serval.transport.flow import CreditReturn, SendWindow
from serval.transport.messages import (
    ErrorReply,
    WsAccept,
    WsClose,
    WsConnect,
    WsCredit,
    WsData,
)

logger = logging.getLogger("serval.proxy")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

CLOSE_GOING_AWAY = 1001
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_GRACE_S = 5.0  # how long an app may take to finish after its client closed


def connect_message(scope: Scope, root_path: str, request_id: str, model_id: str) -> WsConnect:
    client = scope.get("client") or ("", 0)
    return WsConnect(
        scope["path"],
        scope.get("query_string", b""),
        list(scope.get("headers", [])),
        root_path,
        scope.get("scheme", "ws"),
        scope.get("http_version", "1.1"),
        client[0],
        client[1],
        list(scope.get("subprotocols", [])),
        request_id,
        model_id,
    )


async def forward_measured(
    router: Router,
    connect: WsConnect,
    receive: Receive,
    send: Send,
    metrics: WebSocketMetrics | None,
    key: tuple[str, str, str],
) -> None:
    """:func:`forward_websocket`, counted in ``metrics`` (None: metrics are off) under
    ``key`` (application, deployment, route prefix): open sockets and their duration."""
    if metrics is None:
        await forward_websocket(router, connect, receive, send)
        return
    metrics.opened(key)
    started = time.perf_counter()
    try:
        await forward_websocket(router, connect, receive, send)
    finally:
        metrics.closed(key, time.perf_counter() - started)


async def forward_websocket(
    router: Router, connect: WsConnect, receive: Receive, send: Send
) -> None:
    """Relay one client socket to a replica of ``router``'s deployment."""
    first_event = await receive()
    if first_event["type"] != "websocket.connect":
        return  # the client left before the handshake finished
    try:
        assignment = await router.assign(connect)
    except ServalError as exc:
        logger.warning("websocket %s refused: %s", connect.path, exc)
        await send({"type": "websocket.close", "code": CLOSE_TRY_AGAIN_LATER})
        return
    first = assignment.first
    if not isinstance(first, WsAccept):
        if isinstance(first, ErrorReply):
            logger.warning("websocket %s failed: %s", connect.path, first.message)
        code = first.code if isinstance(first, WsClose) else CLOSE_INTERNAL_ERROR
        assignment.close()
        await send({"type": "websocket.close", "code": code})
        return
    await send(
        {"type": "websocket.accept", "subprotocol": first.subprotocol, "headers": first.headers}
    )
    await _relay(assignment, receive, send)


async def _relay(assignment: Assignment, receive: Receive, send: Send) -> None:
    window = SendWindow()  # client → replica: credit from the replica
    upstream = asyncio.ensure_future(_client_to_replica(assignment, receive, window))
    downstream = asyncio.ensure_future(_replica_to_client(assignment, send, window))
    try:
        done, _ = await asyncio.wait([upstream, downstream], return_when=asyncio.FIRST_COMPLETED)
        if upstream in done and not downstream.done():
            # The client closed: let the app see its disconnect and finish (the replica
            # then ends the stream) before the request is cancelled.
            await asyncio.wait([downstream], timeout=CLOSE_GRACE_S)
    finally:
        for task in (upstream, downstream):
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        assignment.close()


async def _client_to_replica(assignment: Assignment, receive: Receive, window: SendWindow) -> None:
    stream = assignment.stream
    while True:
        event = await receive()
        kind = event["type"]
        if kind == "websocket.receive":
            text = event.get("text")
            data = None if text is not None else (event.get("bytes") or b"")
            await window.acquire()  # the app has not taken the earlier ones yet: wait
            stream.conn.send(stream.stream_id, WsData(text, data))
            await stream.conn.drain()
        elif kind == "websocket.disconnect":
            stream.conn.send(stream.stream_id, WsClose(event.get("code", 1000), ""))
            return


async def _replica_to_client(assignment: Assignment, send: Send, window: SendWindow) -> None:
    stream = assignment.stream
    credit = CreditReturn()
    while True:
        msg = await assignment.receive()
        if isinstance(msg, WsData):
            if msg.text is not None:
                await send({"type": "websocket.send", "text": msg.text})
            else:
                await send({"type": "websocket.send", "bytes": msg.data or b""})
            n = credit.took_one()  # the client took it: the replica may send more
            if n:
                stream.conn.send(stream.stream_id, WsCredit(n))
        elif isinstance(msg, WsCredit):
            window.grant(msg.n)
        elif isinstance(msg, WsClose):
            await _close(send, msg.code, msg.reason)
            return
        elif isinstance(msg, ErrorReply):  # the replica died or the connection broke
            logger.warning("websocket closed: the replica went away (%s)", msg.message)
            await _close(send, CLOSE_INTERNAL_ERROR, "the replica went away")
            return


async def _close(send: Send, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):  # the client may be gone already
        await send({"type": "websocket.close", "code": code, "reason": reason})
