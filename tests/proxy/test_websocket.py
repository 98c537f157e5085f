"""WebSockets end to end: stock `websockets` client → serval's proxy → a replica's
FastAPI (or plain ASGI) app, and back."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
from typing import Any

import httpx
import pytest
import websockets
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

import serval
import serval as serve
from tests.observability._scrape import scrape
from tests.utils import wait_for

api = FastAPI()
NOISE = random.Random(7).randbytes(64 * 1024)  # permessage-deflate cannot shrink it


@serve.deployment(max_ongoing_requests=100)
@serve.ingress(api)
class Chat:
    def __init__(self) -> None:
        self.closed: list[int] = []

    @api.websocket("/echo")
    async def echo(self, ws: WebSocket) -> None:
        await ws.accept(
            subprotocol=ws.scope["subprotocols"][0] if ws.scope["subprotocols"] else None
        )
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    self.closed.append(message.get("code", 1000))
                    return
                if message.get("text") == "die":
                    os._exit(1)
                if message.get("text") == "close-me":
                    await ws.close(code=4001, reason="asked to")
                    return
                if message.get("text") is not None:
                    await ws.send_text(message["text"].upper())
                else:
                    await ws.send_bytes(bytes(reversed(message["bytes"])))
        except WebSocketDisconnect as exc:
            self.closed.append(exc.code)

    @api.websocket("/refuse")
    async def refuse(self, ws: WebSocket) -> None:
        await ws.close(code=1008)

    @api.websocket("/count")
    async def count(self, ws: WebSocket) -> None:
        await ws.accept()
        n = int(await ws.receive_text())
        for i in range(n):
            await ws.send_text(str(i))
        await ws.close()

    @api.get("/closed")
    def closed_list(self) -> list[int]:
        return self.closed

    @api.websocket("/flood")
    async def flood(self, ws: WebSocket) -> None:
        await ws.accept()
        n = int(await ws.receive_text())
        self.flooded = 0
        for i in range(n):
            await ws.send_bytes(i.to_bytes(4, "big") + NOISE)  # incompressible
            self.flooded = i + 1
        await ws.close()

    @api.get("/flooded")
    def flooded_count(self) -> int:
        return getattr(self, "flooded", 0)


async def plain_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A bare ASGI app (no framework): echoes one message, then closes with 1000."""
    assert scope["type"] == "websocket"
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    message = await receive()
    await send({"type": "websocket.send", "text": f"plain:{message.get('text')}"})
    await send({"type": "websocket.close", "code": 1000})


@serve.deployment
@serve.ingress(plain_asgi)
class Plain:
    pass


@serve.deployment
def not_a_socket(request: Any) -> str:
    return "http only"


def test_a_slow_client_slows_the_sender(serve: str) -> None:
    """Backpressure end to end: while the client reads nothing, the app's send() waits
    (per-socket credit), instead of the proxy buffering the whole stream."""
    serval.run(Chat.bind(), name="chat", route_prefix="/chat")
    total = 1000  # 64 MB if nothing held the sender back
    # A small receive buffer (no autotuning) so the kernel holds little of the stream.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.connect(("127.0.0.1", int(serve.rsplit(":", 1)[1])))
    with connect(_ws(serve, "/chat/flood"), sock=sock, max_size=None, max_queue=2) as ws:
        ws.send(str(total))
        first = ws.recv(timeout=30)
        assert first == (0).to_bytes(4, "big") + NOISE
        time.sleep(1.5)  # the client reads nothing meanwhile
        sent = httpx.get(f"{serve}/chat/flooded", timeout=10).json()
        assert 0 < sent < total / 2, sent
        got = 1
        for i, message in enumerate(ws, start=1):
            assert message[:4] == i.to_bytes(4, "big")
            got += 1
    assert got == total


def _ws(base: str, path: str) -> str:
    return base.replace("http://", "ws://") + path


def test_text_binary_subprotocol_and_close_codes(runtime_serve: str) -> None:
    serve = runtime_serve  # on both runtimes
    serval.run(Chat.bind(), name="chat", route_prefix="/chat")
    with connect(_ws(serve, "/chat/echo"), subprotocols=["v1.chat"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "v1.chat"
        ws.send("hello")
        assert ws.recv() == "HELLO"
        ws.send(b"\x01\x02\x03")
        assert ws.recv() == b"\x03\x02\x01"
        ws.ping().wait(10)  # pings are answered (by the proxy's websocket server)
        ws.send("close-me")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv()
    assert info.value.rcvd is not None
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (4001, "asked to")


def test_client_close_reaches_the_handler(serve: str) -> None:
    serval.run(Chat.bind(), name="chat", route_prefix="/chat")
    with connect(_ws(serve, "/chat/echo")) as ws:
        ws.send("x")
        assert ws.recv() == "X"
        ws.close(code=4002)

    def seen() -> list[int]:
        return httpx.get(f"{serve}/chat/closed", timeout=10).json()  # type: ignore[no-any-return]

    deadline = 50
    while 4002 not in seen() and deadline:
        deadline -= 1
        asyncio.run(asyncio.sleep(0.1))
    assert 4002 in seen()


def test_many_concurrent_sockets_on_one_replica(serve: str) -> None:
    serval.run(Chat.bind(), name="chat", route_prefix="/chat")

    async def one(i: int) -> list[str]:
        async with websockets.connect(_ws(serve, "/chat/count")) as ws:
            await ws.send(str(50 + i))
            return [str(m) async for m in ws]

    async def many() -> list[list[str]]:
        return await asyncio.gather(*(one(i) for i in range(40)))

    results = asyncio.run(asyncio.wait_for(many(), 60))
    for i, got in enumerate(results):
        assert got == [str(k) for k in range(50 + i)]
    # The proxy's metrics: 40 sockets forwarded, none open now, each one's duration.
    chat = {"application": "chat", "deployment": "Chat", "route": "/chat"}
    wait_for(  # the proxy lets go of a socket once both sides closed
        lambda: scrape(serve).value("serval_websocket_open_connections", **chat) == 0,
        what="the proxy to close its sockets",
    )
    m = scrape(serve)
    assert m.value("serval_websocket_connections_total", **chat) == 40
    assert m.value("serval_websocket_connection_duration_seconds_count", **chat) == 40


def test_refusals_and_plain_http_on_a_socket_route(serve: str) -> None:
    serval.run(Chat.bind(), name="chat", route_prefix="/chat")
    serval.run(not_a_socket.bind(), name="fn", route_prefix="/fn")
    for path in ("/chat/refuse", "/fn", "/nowhere"):
        with pytest.raises(InvalidStatus) as info:
            connect(_ws(serve, path), open_timeout=20)
        assert info.value.response.status_code == 403, path
    # A plain HTTP request to the socket route gets what FastAPI itself answers.
    expected = asyncio.run(_asgi_get(api, "/echo"))
    got = httpx.get(f"{serve}/chat/echo", timeout=10)
    assert got.status_code == expected


async def _asgi_get(app: Any, path: str) -> int:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as c:
        return (await c.get(path)).status_code


def test_plain_asgi_app(serve: str) -> None:
    serval.run(Plain.bind(), name="plain", route_prefix="/plain")
    with connect(_ws(serve, "/plain/")) as ws:
        ws.send("hi")
        assert ws.recv() == "plain:hi"
        with pytest.raises(ConnectionClosed) as info:
            ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1000


def test_a_replica_that_dies_closes_its_sockets_with_1011(serve: str) -> None:
    serval.run(Chat.bind(), name="chat", route_prefix="/chat")
    with connect(_ws(serve, "/chat/echo")) as other, connect(_ws(serve, "/chat/echo")) as ws:
        ws.send("ping")
        assert ws.recv() == "PING"
        ws.send("die")
        for sock in (ws, other):
            with pytest.raises(ConnectionClosed) as info:
                sock.recv(timeout=30)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1011
    # and the deployment recovers: a new replica answers new sockets
    with connect(_ws(serve, "/chat/echo"), open_timeout=60) as ws:
        ws.send("back")
        assert ws.recv(timeout=30) == "BACK"
