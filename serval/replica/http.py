"""HTTP inside the replica: an ``HttpRequest`` frame in, response frames out.

The proxy ships the request as one frame; here it becomes an ASGI scope, then a
Starlette ``Request`` for plain deployments, or is handed to the ASGI app of an
``@serval.ingress`` class. Return values become HTTP the way Ray Serve does it:
``str`` → text, ``bytes`` → octet-stream, a Starlette ``Response`` as is, generators
stream, anything else JSON.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from serval.transport.messages import (
    BodyChunk,
    Headers,
    HttpRequest,
    HttpResponse,
    HttpResponseStart,
    Message,
    StreamEnd,
)

Send = Callable[[Message], None]
ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]

_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]
_JSON = [(b"content-type", b"application/json")]
_OCTET = [(b"content-type", b"application/octet-stream")]


def _enc_hook(obj: Any) -> Any:
    tolist = getattr(obj, "tolist", None)  # numpy arrays and scalars, torch tensors
    if callable(tolist):
        return tolist()
    dump = getattr(obj, "model_dump", None)  # pydantic models
    if callable(dump):
        return dump(mode="json")
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, set | frozenset):
        return list(obj)
    raise TypeError(f"response of type {type(obj).__name__} is not JSON-serializable")


_json = msgspec.json.Encoder(enc_hook=_enc_hook)


def json_bytes(value: Any) -> bytes:
    return _json.encode(value)


class RequestBody:
    """The ASGI ``receive`` of one request: the body once, then wait for disconnect."""

    __slots__ = ("_body", "_disconnected", "_sent")

    def __init__(self, body: bytes) -> None:
        self._body = body
        self._sent = False
        self._disconnected: asyncio.Event | None = None

    async def __call__(self) -> dict[str, Any]:
        if not self._sent:
            self._sent = True
            return {"type": "http.request", "body": self._body, "more_body": False}
        if self._disconnected is None:
            self._disconnected = asyncio.Event()
        await self._disconnected.wait()
        return {"type": "http.disconnect"}

    def disconnect(self) -> None:
        if self._disconnected is None:
            self._disconnected = asyncio.Event()
        self._disconnected.set()


def make_scope(req: HttpRequest) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": req.http_version,
        "method": req.method,
        "scheme": req.scheme,
        "path": req.path,
        "raw_path": req.path.encode(),
        "query_string": req.query_string,
        "root_path": req.root_path,
        "headers": req.headers,
        "client": (req.client_host, req.client_port) if req.client_host else None,
        "server": None,
        "state": {},
    }


def make_request(req: HttpRequest) -> tuple[Request, RequestBody]:
    receive = RequestBody(req.body)
    return Request(make_scope(req), receive), receive


class ASGIResponder:
    """An ASGI ``send`` that turns response messages into frames.

    A response that fits in one ``http.response.body`` goes out as a single
    ``HttpResponse`` frame; anything longer streams.
    """

    __slots__ = ("_headers", "_send", "_started", "_status", "_streaming", "done")

    def __init__(self, send: Send) -> None:
        self._send = send
        self._status = 200
        self._headers: Headers = []
        self._started = False
        self._streaming = False
        self.done = False

    async def __call__(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self._status = message["status"]
            self._headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
            self._started = True
        elif kind == "http.response.body":
            body = message.get("body", b"")
            more = message.get("more_body", False)
            if not self._streaming and not more:
                self._send(HttpResponse(self._status, self._headers, bytes(body)))
                self.done = True
                return
            if not self._streaming:
                self._streaming = True
                self._send(HttpResponseStart(self._status, self._headers))
            if body:
                self._send(BodyChunk(bytes(body)))
            if not more:
                self._send(StreamEnd())
                self.done = True

    @property
    def started(self) -> bool:
        return self._started


async def send_result(
    result: Any,
    send: Send,
    scope: dict[str, Any],
    receive: RequestBody,
    items: Callable[[Any], AsyncIterator[Any]],
) -> None:
    """Turn a deployment's return value into response frames."""
    if isinstance(result, str):
        send(HttpResponse(200, _TEXT, result.encode()))
    elif isinstance(result, bytes | bytearray | memoryview):
        send(HttpResponse(200, _OCTET, bytes(result)))
    elif isinstance(result, Response):
        responder = ASGIResponder(send)
        await result(scope, receive, responder)  # type: ignore[arg-type]
        if not responder.done:
            send(StreamEnd())
    elif hasattr(result, "__anext__") or hasattr(result, "__next__"):
        send(HttpResponseStart(200, _TEXT))
        async for item in items(result):
            chunk = (
                item
                if isinstance(item, bytes)
                else str(item).encode()
                if isinstance(item, str)
                else json_bytes(item)
            )
            send(BodyChunk(chunk))
        send(StreamEnd())
    else:
        send(HttpResponse(200, _JSON, json_bytes(result)))
