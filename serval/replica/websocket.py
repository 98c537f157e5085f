"""WebSockets inside the replica: a ``WsConnect`` stream in, the ASGI app's socket out.

The proxy opens one stream per socket (see :mod:`serval.transport.messages`). Here the
stream becomes an ASGI ``websocket`` scope for the deployment's ASGI app (an
``@serval.ingress`` FastAPI/Starlette app): ``receive()`` yields ``websocket.connect``,
then the client's messages as they arrive on the stream; ``send()`` turns
``websocket.accept`` / ``send`` / ``close`` into frames on the same stream. The
replica's sends wait for credit from the proxy (``WsCredit``, see
:mod:`serval.transport.flow`), so a slow client slows the app's ``send()`` instead of
filling the proxy's memory; the client's messages are credited as the app takes them.

Either side may close: the client's close reaches the app as ``websocket.disconnect``;
the app's close (or its return, or an exception: 1011) ends the stream. When the
proxy goes away the stream's task is cancelled like any request's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from serval.transport.connection import Connection
from serval.transport.flow import CreditReturn, SendWindow
from serval.transport.messages import (
    Message,
    WsAccept,
    WsClose,
    WsConnect,
    WsCredit,
    WsData,
)

logger = logging.getLogger("serval.replica")

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]

CLOSE_INTERNAL_ERROR = 1011  # the app failed (or the replica is going away)
CLOSE_NOT_SUPPORTED = 1003  # the deployment has no WebSocket endpoint


def make_websocket_scope(msg: WsConnect) -> dict[str, Any]:
    return {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": msg.http_version,
        "scheme": msg.scheme,
        "path": msg.path,
        "raw_path": msg.path.encode(),
        "query_string": msg.query_string,
        "root_path": msg.root_path,
        "headers": msg.headers,
        "client": (msg.client_host, msg.client_port) if msg.client_host else None,
        "server": None,
        "subprotocols": msg.subprotocols,
        "state": {},
    }


class WebSocketSession:
    """One socket's ASGI ``receive``/``send`` pair, fed by frames from the proxy."""

    def __init__(self, conn: Connection, stream_id: int) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self._incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._incoming.put_nowait({"type": "websocket.connect"})
        self.accepted = False
        self.closed = False
        self._window = SendWindow()
        self._credit = CreditReturn()

    # -- frames from the proxy ---------------------------------------------------

    def push(self, msg: Message) -> None:
        if isinstance(msg, WsData):
            event: dict[str, Any] = {"type": "websocket.receive"}
            if msg.text is not None:
                event["text"] = msg.text
            else:
                event["bytes"] = msg.data or b""
            self._incoming.put_nowait(event)
        elif isinstance(msg, WsCredit):
            self._window.grant(msg.n)
        elif isinstance(msg, WsClose):
            self._window.open_wide()
            self._incoming.put_nowait(
                {"type": "websocket.disconnect", "code": msg.code, "reason": msg.reason}
            )

    # -- the ASGI app's side -------------------------------------------------------

    async def receive(self) -> dict[str, Any]:
        event = await self._incoming.get()
        if event["type"] == "websocket.receive":
            credit = self._credit.took_one()
            if credit and not self.closed:
                self.conn.send(self.stream_id, WsCredit(credit))
        return event

    async def send(self, message: dict[str, Any]) -> None:
        if self.closed:
            return  # the socket is gone: ASGI apps may still try to send
        kind = message["type"]
        if kind == "websocket.accept":
            self.accepted = True
            headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
            self.conn.send(self.stream_id, WsAccept(message.get("subprotocol"), headers))
        elif kind == "websocket.send":
            text = message.get("text")
            data = None if text is not None else bytes(message.get("bytes") or b"")
            await self._window.acquire()
            if not self.closed:
                self.conn.send(self.stream_id, WsData(text, data))
                await self.conn.drain()
        elif kind == "websocket.close":
            self.close(message.get("code", 1000), message.get("reason"))

    def close(self, code: int, reason: Any = "") -> None:
        if not self.closed:
            self.closed = True
            # A close reason is text of at most 123 bytes on the wire; FastAPI puts its
            # validation errors (a list) there.
            text = reason if isinstance(reason, str) else str(reason or "")
            text = text.encode()[:123].decode(errors="ignore")
            self._window.open_wide()
            self.conn.send(self.stream_id, WsClose(int(code), text))


async def serve_websocket(app: ASGIApp | None, session: WebSocketSession, msg: WsConnect) -> None:
    """Run the deployment's ASGI app on one socket until either side closes."""
    if app is None:
        session.close(CLOSE_NOT_SUPPORTED, "this deployment has no WebSocket endpoint")
        return
    try:
        await app(make_websocket_scope(msg), session.receive, session.send)
    except asyncio.CancelledError:
        session.close(CLOSE_INTERNAL_ERROR, "the replica stopped the request")
        raise
    except Exception:
        logger.exception("websocket %s failed", msg.request_id or msg.path)
        session.close(CLOSE_INTERNAL_ERROR, "internal error")
        return
    session.close(1000)  # the app returned without closing: close normally
