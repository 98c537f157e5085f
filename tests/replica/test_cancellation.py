"""Cancellation end to end: a client that disconnects cancels the handler (async: its
task; sync: the thread is marked), the replica's slot is free at once, and handle
callers get RequestCancelledError from ``response.cancel()``."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request

import serval
from serval.exceptions import RequestCancelledError
from tests.observability._scrape import scrape
from tests.utils import wait_for


def _mark(marks: str, name: str) -> None:
    (Path(marks) / name).touch()


def _released(marks: str, name: str) -> None:
    """Block (a sync handler's thread) until the test lets it go; bounded."""
    deadline = time.monotonic() + 60
    while not (Path(marks) / f"{name}.release").exists() and time.monotonic() < deadline:
        time.sleep(0.01)


@serval.deployment(max_ongoing_requests=1)
class AsyncSlow:
    def __init__(self, marks: str) -> None:
        self.marks = marks

    async def wait(self, name: str) -> str:
        _mark(self.marks, f"{name}.started")
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            _mark(self.marks, f"{name}.cancelled")
            raise
        return "finished"

    async def quick(self, value: object = "quick") -> object:
        return value

    async def __call__(self, request: Request) -> object:
        name = request.query_params.get("name")
        return await (self.wait(name) if name else self.quick())


@serval.deployment(max_ongoing_requests=1)
class SyncSlow:
    def __init__(self, marks: str) -> None:
        self.marks = marks

    def __call__(self, request: Request) -> str:
        name = request.query_params.get("name")
        if not name:
            return "quick"
        _mark(self.marks, f"{name}.started")
        context = serval.get_replica_context()
        deadline = time.monotonic() + 60
        while not context.is_request_cancelled() and time.monotonic() < deadline:
            time.sleep(0.01)
        if context.is_request_cancelled():
            _mark(self.marks, f"{name}.cancelled")
        _released(self.marks, name)  # the thread is still busy: the slot is free anyway
        return "finished"


@serval.deployment
class Ingress:
    def __init__(self, slow: serval.handle.DeploymentHandle) -> None:
        self.slow = slow

    async def __call__(self, request: Request) -> object:
        return await self.slow.wait.remote(request.query_params["name"])


def queued(base: str) -> float:
    return scrape(base).value("serval_router_queued_requests")


def disconnect_mid_request(base: str, path: str, started: Path) -> None:
    """A raw HTTP/1.1 client that sends a request and hangs up once it is being handled."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        wait_for(started.exists, timeout_s=60, what=f"{started.name}")


@pytest.mark.parametrize("deployment", [AsyncSlow, SyncSlow], ids=["async", "sync"])
def test_a_client_that_disconnects_cancels_the_handler_and_frees_its_slot(
    serve: str, tmp_path: Path, deployment: serval.Deployment
) -> None:
    serval.run(deployment.bind(str(tmp_path)), name="s", route_prefix="/s")
    disconnect_mid_request(serve, "/s?name=a", tmp_path / "a.started")
    wait_for((tmp_path / "a.cancelled").exists, timeout_s=60, what="the handler cancelled")
    # max_ongoing_requests=1 and the cancelled handler's slot is free: this runs at once
    # (a sync handler's thread is still busy until released, its slot is not).
    r = httpx.get(f"{serve}/s", timeout=60)
    assert r.status_code == 200 and "quick" in r.text
    (tmp_path / "a.release").touch()


def test_cancellation_reaches_the_calls_the_handler_made(serve: str, tmp_path: Path) -> None:
    slow = AsyncSlow.bind(str(tmp_path))
    serval.run(Ingress.bind(slow), name="i", route_prefix="/i")
    disconnect_mid_request(serve, "/i?name=b", tmp_path / "b.started")
    wait_for((tmp_path / "b.cancelled").exists, timeout_s=60, what="the downstream cancelled")


def test_response_cancel_raises_request_cancelled_error(serve: str, tmp_path: Path) -> None:
    handle = serval.run(AsyncSlow.bind(str(tmp_path)), name="h", route_prefix=None)
    response = handle.wait.remote("c")
    wait_for((tmp_path / "c.started").exists, timeout_s=60, what="the call started")
    response.cancel()
    with pytest.raises(RequestCancelledError, match="cancelled"):
        response.result(timeout_s=60)
    wait_for((tmp_path / "c.cancelled").exists, timeout_s=60, what="the handler cancelled")
    assert handle.quick.remote().result(timeout_s=60) == "quick"  # the slot is free


def test_a_cancelled_response_passed_into_another_call(serve: str, tmp_path: Path) -> None:
    handle = serval.run(AsyncSlow.bind(str(tmp_path)), name="h", route_prefix=None)
    first = handle.wait.remote("d")
    second = handle.quick.remote(first)  # waits for `first`
    wait_for((tmp_path / "d.started").exists, timeout_s=60, what="the call started")
    first.cancel()
    with pytest.raises(RequestCancelledError):
        second.result(timeout_s=60)
    wait_for((tmp_path / "d.cancelled").exists, timeout_s=60, what="the handler cancelled")


async def test_awaiting_a_cancelled_response(serve: str, tmp_path: Path) -> None:
    handle = serval.run(AsyncSlow.bind(str(tmp_path)), name="h", route_prefix=None)
    response = handle.wait.remote("e")
    await asyncio.to_thread(wait_for, (tmp_path / "e.started").exists, 60)
    response.cancel()
    with pytest.raises(RequestCancelledError):
        await response
    await asyncio.to_thread(wait_for, (tmp_path / "e.cancelled").exists, 60)


@serval.deployment(max_ongoing_requests=1)
class Streams:
    def __init__(self, marks: str) -> None:
        self.marks = marks

    async def __call__(self, request: Request) -> object:
        name = request.query_params["name"]
        _mark(self.marks, f"{name}.started")
        if name.startswith("hold"):
            await asyncio.to_thread(_released, self.marks, name)
            return "released"
        return self.chunks(name)

    async def chunks(self, name: str) -> AsyncIterator[str]:
        try:
            for i in range(3600):
                yield f"chunk {i}\n"
                await asyncio.sleep(0.05)
        except (asyncio.CancelledError, GeneratorExit):
            _mark(self.marks, f"{name}.cancelled")
            raise


def test_a_client_that_disconnects_mid_stream_stops_the_generator(
    serve: str, tmp_path: Path
) -> None:
    serval.run(Streams.bind(str(tmp_path)), name="s", route_prefix="/s")
    host, port = serve.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(f"GET /s?name=f HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        got = b""
        while b"chunk 2" not in got:  # the stream is flowing
            got += sock.recv(4096)
    wait_for((tmp_path / "f.cancelled").exists, timeout_s=60, what="the generator stopped")


def test_a_queued_request_whose_client_left_never_runs(serve: str, tmp_path: Path) -> None:
    serval.run(Streams.bind(str(tmp_path)), name="s", route_prefix="/s")
    with ThreadPoolExecutor(1) as pool:
        holding = pool.submit(httpx.get, f"{serve}/s?name=hold1", timeout=60)
        wait_for((tmp_path / "hold1.started").exists, timeout_s=60, what="the slot taken")
        # This one waits in the router's queue (max_ongoing_requests=1) when it hangs up.
        host, port = serve.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(f"GET /s?name=g HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            wait_for(lambda: queued(serve) == 1, timeout_s=60, what="the request queued")
        wait_for(lambda: queued(serve) == 0, timeout_s=60, what="the queue emptied")
        (tmp_path / "hold1.release").touch()
        assert holding.result().text == "released"
    # The next request runs, the abandoned one never did.
    (tmp_path / "hold2.release").touch()
    assert httpx.get(f"{serve}/s?name=hold2", timeout=60).text == "released"
    assert not (tmp_path / "g.started").exists()


def test_cancelling_a_streaming_response_stops_the_generator(serve: str, tmp_path: Path) -> None:
    handle = serval.run(Streams.bind(str(tmp_path)), name="s", route_prefix=None)
    stream = handle.options(stream=True).chunks.remote("k")
    assert next(iter(stream)) == "chunk 0\n"
    stream.cancel()
    with pytest.raises(RequestCancelledError):
        next(iter(stream))
    wait_for((tmp_path / "k.cancelled").exists, timeout_s=60, what="the generator stopped")
