"""Busy polling at low load (serval/transport/busy_poll.py): unit tests on a real event
loop with a stand-in for a process's request counters, and end to end through a real
proxy and replica (the polls' counters on /-/metrics, SERVAL_BUSY_POLL_US=0 off)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

import serval
from serval._env import DEFAULT_BUSY_POLL_US, read_env
from serval.transport import busy_poll
from serval.transport.busy_poll import BusyPoll
from tests.observability._scrape import scrape


@dataclass
class _Load:
    in_flight: int = 0
    total: int = 0


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _until(cond: Any, passes: int = 1_000_000) -> None:
    for _ in range(passes):
        if cond():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


def test_a_poll_keeps_the_loop_turning_until_the_window_ends() -> None:
    async def main() -> tuple[BusyPoll, int]:
        poll = BusyPoll(_Load(), 0.02)
        poll.arm()
        assert poll.polling
        passes = 0
        while poll.polling:  # each pass of ours is a pass of the loop: it never sleeps
            await asyncio.sleep(0)
            passes += 1
        return poll, passes

    poll, passes = _run(main())
    assert (poll.caught, poll.expired) == (0, 1)
    assert passes > 1
    assert poll.seconds >= 0.02


@pytest.mark.parametrize("in_flight", [1, 0], ids=["in flight", "answered within a pass"])
def test_a_request_that_arrives_ends_the_poll_as_caught(in_flight: int) -> None:
    async def main() -> BusyPoll:
        replica = _Load()
        poll = BusyPoll(replica, 60.0)
        poll.arm()
        await asyncio.sleep(0)
        assert poll.polling
        replica.in_flight, replica.total = in_flight, 1  # a request came in
        await _until(lambda: not poll.polling)
        return poll

    poll = _run(main())
    assert (poll.caught, poll.expired) == (1, 0)


def test_no_poll_while_requests_are_in_flight_or_with_a_zero_window() -> None:
    async def main() -> None:
        busy = BusyPoll(_Load(in_flight=1), 60.0)
        busy.arm()
        off = BusyPoll(_Load(), 0.0)
        off.arm()
        await asyncio.sleep(0)
        assert not busy.polling and not off.polling
        assert busy.caught + busy.expired + off.caught + off.expired == 0

    _run(main())


def test_a_proxy_polls_with_one_request_in_flight_and_stops_at_two() -> None:
    async def main() -> BusyPoll:
        proxy = _Load(in_flight=1, total=1)
        poll = BusyPoll(proxy, 60.0, max_in_flight=1)
        poll.arm()  # a request arrived: awake for the replica's answer
        for _ in range(10):
            await asyncio.sleep(0)
        assert poll.polling
        proxy.in_flight, proxy.total = 2, 2  # load: no more polling
        await _until(lambda: not poll.polling)
        poll.arm()
        assert not poll.polling
        return poll

    poll = _run(main())
    assert (poll.caught, poll.expired) == (1, 0)


def test_requests_that_overlapped_since_the_last_arming_skip_a_poll() -> None:
    async def main() -> None:
        replica = _Load(total=1)
        poll = BusyPoll(replica, 60.0)
        poll.arm()  # one request, answered: poll
        assert poll.polling
        replica.in_flight = 3  # three at once: the poll ends; they are answered
        await _until(lambda: not poll.polling)
        replica.in_flight, replica.total = 0, 4
        poll.arm()
        assert not poll.polling  # under load: no poll
        replica.total = 5  # one at a time again
        poll.arm()
        assert poll.polling

    _run(main())


def test_arming_again_while_polling_keeps_one_callback(monkeypatch: pytest.MonkeyPatch) -> None:
    ticks = []
    monkeypatch.setattr(busy_poll, "_give_way", lambda: ticks.append(1))

    async def main() -> BusyPoll:
        replica = _Load()
        poll = BusyPoll(replica, 60.0)
        poll.arm()
        replica.total += 1  # a request came and went: the replica arms again
        poll.arm()
        for _ in range(100):
            await asyncio.sleep(0)
        assert poll.polling
        replica.in_flight = 1
        await _until(lambda: not poll.polling)
        return poll

    poll = _run(main())
    assert 95 <= len(ticks) <= 105  # one tick per pass, not two
    assert (poll.caught, poll.expired) == (2, 0)


def test_the_window_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SERVAL_BUSY_POLL_US", raising=False)
    assert read_env().busy_poll_us == DEFAULT_BUSY_POLL_US
    monkeypatch.setenv("SERVAL_BUSY_POLL_US", "0")
    assert read_env().busy_poll_us == 0
    monkeypatch.setenv("SERVAL_BUSY_POLL_US", " 750 ")
    assert read_env().busy_poll_us == 750


@pytest.mark.parametrize("bad", ["abc", "-1", "1.5", "2000000"])
def test_a_bad_window_fails_at_start_naming_the_variable(
    bad: str, serval_home: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVAL_BUSY_POLL_US", bad)
    with pytest.raises(ValueError, match=r"SERVAL_BUSY_POLL_US=.*whole number from 0 to"):
        serval.start(http_options={"port": 0})
    monkeypatch.delenv("SERVAL_BUSY_POLL_US")  # serval_home's clean-up reads it too


@serval.deployment
def hello(_: Any) -> str:
    return "hi"


def _sequential(base: str, n: int) -> None:
    with httpx.Client(base_url=base, timeout=30) as c:
        for _ in range(n):
            assert c.get("/").text == "hi"


def test_the_proxy_and_the_replica_poll_and_say_so(serve: str) -> None:
    serval.run(hello.bind(), name="app", route_prefix="/")
    _sequential(serve, 50)
    scraped = scrape(serve)
    replica = {"component": "replica", "application": "app", "deployment": "hello"}
    polls = scraped.value("serval_busy_polls_total", **replica)
    assert polls >= 49  # one poll per answer, each ended one way or the other
    assert scraped.value("serval_busy_poll_seconds_total", **replica) > 0
    # the proxy arms on each request and each answer (one request in flight at a time)
    assert scraped.value("serval_busy_polls_total", component="proxy") >= 99
    assert scraped.value("serval_busy_poll_seconds_total", component="proxy") > 0


def test_a_zero_window_turns_polling_off(
    serval_home: str, http_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVAL_BUSY_POLL_US", "0")
    serval.start(http_options={"port": http_port})
    base = f"http://127.0.0.1:{http_port}"
    serval.run(hello.bind(), name="app", route_prefix="/")
    _sequential(base, 20)
    scraped = scrape(base)
    assert scraped.value("serval_replica_ongoing_requests", application="app") == 0
    assert not scraped.labels_of("serval_busy_polls_total")
    assert not scraped.labels_of("serval_busy_poll_seconds_total")
