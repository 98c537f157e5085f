"""A framed, multiplexed connection over an asyncio stream transport.

Frame = 8-byte header (payload length, stream id; little endian u32 each) + one
msgpack-encoded :mod:`~serval.transport.messages` message.

Only the side that *connects* opens streams; the side that *accepts* answers them.
A stream ends with one of the ``FINAL`` messages; a ``Cancel`` from the opener asks
the acceptor to stop. When the connection is lost, every open stream receives an
``ErrorReply(kind="unavailable")`` so no caller hangs.

This is the request path, so it is an ``asyncio.Protocol`` (no StreamReader
layers), decodes straight out of the receive buffer and writes each frame with one
``transport.write``.
"""

from __future__ import annotations

import asyncio
import collections
import struct
from collections.abc import Callable
from typing import Any

import msgspec

from serval.transport.messages import FINAL, Cancel, ErrorReply, Message

HEADER = struct.Struct("<II")
_HEADER_SIZE = HEADER.size
_FLUSH_BYTES = 64 * 1024  # frames queued in one tick past this size are written at once
_MAX_FRAME = 1 << 31
_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[Message] = msgspec.msgpack.Decoder(Message)

RequestHandler = Callable[["Connection", int, Message], None]


def encode_frame(stream_id: int, msg: Message) -> bytearray:
    buf = bytearray(_HEADER_SIZE)
    _encoder.encode_into(msg, buf, _HEADER_SIZE)
    HEADER.pack_into(buf, 0, len(buf) - _HEADER_SIZE, stream_id)
    return buf


class ReplyStream:
    """The replies to one request, in order. ``receive()`` returns the next one."""

    __slots__ = ("_done", "_items", "_waiter", "conn", "stream_id")

    def __init__(self, conn: Connection, stream_id: int) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self._items: collections.deque[Message] = collections.deque()
        self._waiter: asyncio.Future[Message] | None = None
        self._done = False

    def push(self, msg: Message) -> None:
        if isinstance(msg, FINAL):
            self._done = True
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(msg)
                return
        self._items.append(msg)

    async def receive(self) -> Message:
        if self._items:
            return self._items.popleft()
        waiter = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        try:
            msg: Message = await waiter
            return msg
        finally:
            self._waiter = None

    @property
    def finished(self) -> bool:
        return self._done and not self._items

    def cancel(self) -> None:
        """Tell the other side to stop, and forget the stream."""
        if not self._done:
            self._done = True
            self.conn.forget(self.stream_id, notify=True)


class Connection(asyncio.Protocol):
    """One end of a framed connection (see the module docstring)."""

    def __init__(
        self,
        handler: RequestHandler | None = None,
        on_lost: Callable[[Connection], None] | None = None,
    ) -> None:
        self._handler = handler
        self._on_lost = on_lost
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._streams: dict[int, ReplyStream] = {}
        self._next_id = 1
        self._paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._out: list[bytes | bytearray] = []  # frames waiting for this tick's flush
        self._out_bytes = 0
        self._flush_pending = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = False
        self.peer: Any = None

    # -- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        self._loop = asyncio.get_running_loop()
        self.peer = transport.get_extra_info("peername")

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        size = len(buf)
        pos = 0
        with memoryview(buf) as view:
            while size - pos >= _HEADER_SIZE:
                length, stream_id = HEADER.unpack_from(buf, pos)
                end = pos + _HEADER_SIZE + length
                if end > size:
                    break
                msg = _decoder.decode(view[pos + _HEADER_SIZE : end])
                pos = end
                self._dispatch(stream_id, msg)
        if pos:
            del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        lost = ErrorReply(
            kind="unavailable",
            type_name="ConnectionLost",
            message=f"connection to {self.peer or 'peer'} lost" + (f": {exc}" if exc else ""),
        )
        streams, self._streams = self._streams, {}
        for stream in streams.values():
            stream.push(lost)
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()
        if self._handler is not None:
            # Acceptor side: let the handler cancel the work it started for this peer.
            self._handler(self, 0, Cancel())
        if self._on_lost is not None:
            self._on_lost(self)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()

    # -- API -------------------------------------------------------------------------

    def _dispatch(self, stream_id: int, msg: Message) -> None:
        stream = self._streams.get(stream_id)
        if stream is not None:
            if isinstance(msg, FINAL):
                del self._streams[stream_id]
            stream.push(msg)
        elif self._handler is not None:
            self._handler(self, stream_id, msg)

    def send(self, stream_id: int, msg: Message) -> int:
        """Queue a frame; the frames sent in one event-loop tick go out together at its
        end (one vectored write for all the requests and replies of a busy tick).
        Returns the frame's size in bytes (0: the connection is closed)."""
        if self._transport is None or self.closed:
            return 0
        frame = encode_frame(stream_id, msg)
        self._out.append(frame)
        self._out_bytes += len(frame)
        if self._out_bytes >= _FLUSH_BYTES:  # a sender that does not yield: write now
            self._flush()
        elif not self._flush_pending:
            self._flush_pending = True
            assert self._loop is not None
            self._loop.call_soon(self._flush)
        return len(frame)

    def _flush(self) -> None:
        self._flush_pending = False
        if not self._out:
            return
        out, self._out, self._out_bytes = self._out, [], 0
        if self._transport is not None and not self.closed:
            self._transport.writelines(out)  # no join: the frames go out as they are

    async def drain(self) -> None:
        """Wait until the transport's write buffer has room (backpressure)."""
        if self._paused and not self.closed:
            waiter = asyncio.get_running_loop().create_future()
            self._drain_waiters.append(waiter)
            await waiter

    def open(self, msg: Message) -> ReplyStream:
        """Send a request on a new stream; read the replies from the returned stream."""
        stream_id = self._next_id
        self._next_id = stream_id + 1 if stream_id < 0xFFFFFFF0 else 1
        stream = ReplyStream(self, stream_id)
        if self.closed:
            stream.push(
                ErrorReply(
                    kind="unavailable",
                    type_name="ConnectionLost",
                    message=f"connection to {self.peer or 'peer'} is closed",
                )
            )
            return stream
        self._streams[stream_id] = stream
        self.send(stream_id, msg)
        return stream

    def forget(self, stream_id: int, notify: bool) -> None:
        if self._streams.pop(stream_id, None) is not None and notify:
            self.send(stream_id, Cancel())

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    def close(self) -> None:
        if self._transport is not None and not self.closed:
            self._flush()  # what was sent before close() still goes out
            self._transport.close()
