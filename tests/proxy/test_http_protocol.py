"""The proxy's HTTP protocol: a response leaves in one write (serval/proxy/http_protocol.py)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from starlette.responses import PlainTextResponse, StreamingResponse

import serval
from serval.proxy.http_protocol import CoalescingTransport


class RecordingTransport:
    """The transport calls the wrapper forwards, recorded."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.calls: list[str] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def writelines(self, lines: list[bytes]) -> None:
        self.writes.append(b"".join(lines))
        self.calls.append("writelines")

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.calls.append("close")
        self.closing = True

    def abort(self) -> None:
        self.calls.append("abort")
        self.closing = True

    def write_eof(self) -> None:
        self.calls.append("write_eof")

    def get_write_buffer_size(self) -> int:
        return 7

    def pause_reading(self) -> None:
        self.calls.append("pause_reading")

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


async def test_writes_in_one_iteration_leave_as_one_write() -> None:
    raw = RecordingTransport()
    t = CoalescingTransport(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
    t.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    t.write(b"ok")
    t.write(b"")
    assert raw.writes == []
    assert t.get_write_buffer_size() == 7 + 40
    await asyncio.sleep(0)
    assert raw.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]
    t.write(bytearray(b"next"))  # a later iteration: a write of its own
    await asyncio.sleep(0)
    assert raw.writes[1:] == [b"next"]


async def test_close_sends_what_is_pending_first_and_abort_drops_it() -> None:
    raw = RecordingTransport()
    t = CoalescingTransport(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
    t.write(b"last words")
    t.close()
    assert raw.writes == [b"last words"] and raw.calls == ["close"]
    await asyncio.sleep(0)  # the scheduled flush finds nothing pending
    assert raw.writes == [b"last words"]

    raw2 = RecordingTransport()
    t2 = CoalescingTransport(raw2, asyncio.get_running_loop())  # type: ignore[arg-type]
    t2.write(b"never sent")
    t2.abort()
    await asyncio.sleep(0)
    assert raw2.writes == [] and raw2.calls == ["abort"]


async def test_a_transport_closed_meanwhile_gets_no_write_and_the_rest_is_forwarded() -> None:
    raw = RecordingTransport()
    t = CoalescingTransport(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
    t.write(b"x")
    raw.closing = True  # the peer went away before the end of the iteration
    await asyncio.sleep(0)
    assert raw.writes == []
    t.pause_reading()
    assert raw.calls == ["pause_reading"]
    assert t.get_extra_info("peername") == ("127.0.0.1", 1)
    t.writelines([b"a", b"b"])
    t.write_eof()
    assert raw.calls[-1] == "write_eof"


@pytest.mark.parametrize("path", ["/small", "/stream"])
def test_a_response_reaches_the_client_in_one_segment_and_streams_still_stream(
    serve: str, http_port: int, path: str
) -> None:
    """Through a real proxy: a small response arrives whole in the first recv (headers
    and body were one write); a streamed one arrives complete, chunk by chunk."""

    @serval.deployment
    class App:
        async def __call__(self, request: Any) -> Any:
            if request.url.path.endswith("/stream"):

                async def chunks() -> Any:
                    for i in range(3):
                        yield f"chunk{i};"
                        await asyncio.sleep(0.05)

                return StreamingResponse(chunks(), media_type="text/plain")
            return PlainTextResponse("hello")

    serval.run(App.bind(), name="coalesce", route_prefix="/c")
    with socket.create_connection(("127.0.0.1", http_port), timeout=10) as s:
        s.sendall(f"GET /c{path} HTTP/1.1\r\nhost: x\r\n\r\n".encode())
        data = s.recv(65536)
        if path == "/small":
            head, _, body = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            assert body == b"hello"
        else:
            while not data.endswith(b"0\r\n\r\n"):
                more = s.recv(65536)
                assert more, data
                data += more
            assert b"chunk0;" in data and b"chunk2;" in data
