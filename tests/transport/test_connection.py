"""The framed protocol over a real unix socket."""

from __future__ import annotations

import asyncio
import os

from serval.transport.address import dial, listen
from serval.transport.connection import Connection
from serval.transport.messages import (
    BodyChunk,
    Call,
    CallResult,
    ErrorReply,
    HttpRequest,
    HttpResponse,
    Message,
    StreamEnd,
)
from tests.utils import short_tmpdir


async def test_request_reply_streams_and_large_frames() -> None:
    def handler(conn: Connection, sid: int, msg: Message) -> None:
        if isinstance(msg, Call):
            if msg.method == "stream":
                for i in range(3):
                    conn.send(sid, BodyChunk(bytes([i])))
                conn.send(sid, StreamEnd())
            else:
                conn.send(sid, CallResult(msg.payload[::-1]))
        elif isinstance(msg, HttpRequest):
            conn.send(sid, HttpResponse(200, msg.headers, msg.body))

    with short_tmpdir() as d:
        address = f"unix:{os.path.join(d, 's.sock')}"
        server = await listen(address, handler)
        conn = await dial(address)
        replies = await asyncio.gather(
            *[conn.open(Call("x", f"payload{i}".encode())).receive() for i in range(100)]
        )
        assert replies == [CallResult(f"payload{i}".encode()[::-1]) for i in range(100)]
        big = os.urandom(5 * 1024 * 1024)
        reply = await conn.open(HttpRequest("POST", "/", b"", [(b"a", b"b")], big)).receive()
        assert isinstance(reply, HttpResponse) and reply.body == big
        stream = conn.open(Call("stream", b""))
        items = [await stream.receive() for _ in range(4)]
        assert items == [BodyChunk(b"\x00"), BodyChunk(b"\x01"), BodyChunk(b"\x02"), StreamEnd()]
        assert conn.open_streams == 0
        conn.close()
        server.close()


async def test_lost_connection_fails_open_streams() -> None:
    def handler(conn: Connection, sid: int, msg: Message) -> None:
        if isinstance(msg, Call):
            conn.close()  # the replica "dies" mid-request

    with short_tmpdir() as d:
        address = f"unix:{os.path.join(d, 's.sock')}"
        server = await listen(address, handler)
        conn = await dial(address)
        reply = await asyncio.wait_for(conn.open(Call("x", b"")).receive(), 5)
        assert isinstance(reply, ErrorReply) and reply.kind == "unavailable"
        reply = await conn.open(Call("x", b"")).receive()  # on a closed connection
        assert isinstance(reply, ErrorReply) and reply.kind == "unavailable"
        server.close()


async def test_two_megabytes_of_frames_sent_in_one_tick_arrive_whole_and_in_order() -> None:
    got: list[Message] = []
    done = asyncio.Event()
    n = 2000  # ~2 MB of frames from one tick: well past the flush threshold

    def handler(conn: Connection, sid: int, msg: Message) -> None:
        got.append(msg)
        if len(got) == n:
            done.set()

    with short_tmpdir() as d:
        address = f"unix:{os.path.join(d, 's.sock')}"
        server = await listen(address, handler)
        conn = await dial(address)
        payloads = [os.urandom(1000) for _ in range(n)]
        for i, p in enumerate(payloads):  # no await in between: all in one tick
            conn.send(i + 1, Call("x", p))
        await asyncio.wait_for(done.wait(), 10)
        assert [m.payload for m in got if isinstance(m, Call)] == payloads
        conn.close()
        server.close()
