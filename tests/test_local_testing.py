"""``serval.run(app, _local_testing_mode=True)``: the application in the test's own process."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import serval
from serval import _process
from serval.exceptions import ConfigError, ReplicaError, RequestCancelledError
from serval.handle import DeploymentHandle
from tests.utils import serval_children


@serval.deployment
class Doubler:
    def double(self, s: str) -> str:
        return f"{s} {s}"


@serval.deployment(user_config={"greeting": "Hello"})
class Hello:
    def __init__(self, doubler: DeploymentHandle) -> None:
        self.doubler = doubler
        self.where = serval.get_replica_context().deployment

    def reconfigure(self, config: dict[str, Any]) -> None:
        self.greeting = config["greeting"]

    async def say_hello_twice(self, name: str) -> str:
        result: str = await self.doubler.double.remote(f"{self.greeting}, {name}!")
        return result

    def sync_hello(self, name: str) -> str:
        result: str = self.doubler.double.remote(name).result()  # from a pool thread
        return result

    async def __call__(self) -> dict[str, str]:
        return {
            "deployment": serval.get_replica_context().deployment,
            "constructed_in": self.where,
            "model": serval.get_multiplexed_model_id(),
        }

    def count(self, n: int) -> Iterator[str]:
        for i in range(n):
            yield f"{serval.get_multiplexed_model_id()}{i}"

    async def acount(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    async def fail(self) -> None:
        raise KeyError("missing thing")

    async def slow(self, started: threading.Event) -> None:
        started.set()
        await asyncio.sleep(60)

    @serval.batch(max_batch_size=4, batch_wait_timeout_s=0.2)
    async def batched(self, xs: list[int]) -> list[int]:
        await asyncio.sleep(0.05)  # callers arriving meanwhile make the next batch
        return [len(xs)] * len(xs)


def test_the_application_runs_in_this_process_through_its_handle() -> None:
    handle = serval.run(Hello.bind(Doubler.bind()), _local_testing_mode=True)
    assert handle.say_hello_twice.remote(name="Ray").result() == "Hello, Ray! Hello, Ray!"
    assert handle.options(method_name="sync_hello").remote("x").result() == "x x"
    assert handle.remote().result() == {
        "deployment": "Hello",
        "constructed_in": "Hello",
        "model": "",
    }
    assert handle.options(multiplexed_model_id="m7").remote().result()["model"] == "m7"
    assert not _process.is_connected() and not serval_children()  # no instance, no process


def test_streams_responses_passed_on_errors_and_cancellation() -> None:
    handle = serval.run(Hello.bind(Doubler.bind()), _local_testing_mode=True)
    stream = handle.options(stream=True, multiplexed_model_id="m").count.remote(3)
    assert list(stream) == ["m0", "m1", "m2"]
    doubled = serval.run(Doubler.bind(), name="d", _local_testing_mode=True).double.remote("a")
    assert handle.say_hello_twice.remote(doubled).result() == "Hello, a a! Hello, a a!"

    with pytest.raises(ReplicaError) as info:
        handle.fail.remote().result()
    assert isinstance(info.value.cause, KeyError) and "missing thing" in str(info.value)

    started = threading.Event()
    response = handle.slow.remote(started)
    assert started.wait(10)
    response.cancel()
    with pytest.raises(RequestCancelledError):
        response.result(timeout_s=10)


async def test_await_async_streams_and_batching() -> None:
    handle = serval.run(Hello.bind(Doubler.bind()), _local_testing_mode=True)
    assert await handle.say_hello_twice.remote("A") == "Hello, A! Hello, A!"
    assert [i async for i in handle.options(stream=True).acount.remote(3)] == [0, 1, 2]
    sizes = await asyncio.gather(*[handle.batched.remote(i) for i in range(4)])
    # serval's adaptive batching sends a lone first caller at once; the rest are batched
    assert max(sizes) > 1 and all(sizes.count(n) % n == 0 for n in sizes)


def test_bad_combinations_are_refused() -> None:
    with pytest.raises(ConfigError, match="canary"):
        serval.run(Doubler.bind(), canary=0.5, _local_testing_mode=True)
