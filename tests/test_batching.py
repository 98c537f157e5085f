"""@serval.batch: batch formation, options, per-model batches, errors, streaming, waiting."""

from __future__ import annotations

import asyncio
import gc
import inspect
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import serval
from serval.batching import BatchConfig, _Arrivals, batch
from serval.context import RequestContext, _request_context, get_multiplexed_model_id
from serval.exceptions import BatchResultError, ConfigError

LONG_WAIT_S = 5.0  # a timeout no test may pay: calls must finish well before it
QUICK_S = 1.0  # "well before": a behaviour check with a huge margin, not a timing


class Recorder:
    """A batch function that doubles its inputs and records the batches it saw."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        await asyncio.sleep(0)
        return [2 * x for x in items]


@contextmanager
def model_id(value: str) -> Iterator[None]:
    token = _request_context.set(RequestContext(multiplexed_model_id=value))
    try:
        yield
    finally:
        _request_context.reset(token)


def batched(recorder: Recorder, **options: Any) -> Any:
    @batch(**options)
    async def double(items: list[int]) -> list[int]:
        return await recorder(items)

    return double


# -- batch formation -----------------------------------------------------------------------


async def test_concurrent_callers_are_batched_up_to_max_and_get_their_own_results() -> None:
    recorder = Recorder()
    double = batched(recorder, max_batch_size=8, batch_wait_timeout_s=LONG_WAIT_S)

    results = await asyncio.wait_for(asyncio.gather(*(double(i) for i in range(20))), QUICK_S)

    assert results == [2 * i for i in range(20)]
    assert [len(b) for b in recorder.batches] == [8, 8, 4]
    assert sorted(x for b in recorder.batches for x in b) == list(range(20))


async def test_batch_size_fn_sizes_batches_by_their_items() -> None:
    """Ray Serve's batch_size_fn: a batch holds as many calls as fit by that measure."""
    seen: list[list[str]] = []

    @batch(max_batch_size=10, batch_wait_timeout_s=LONG_WAIT_S, batch_size_fn=_total_length)
    async def lengths(texts: list[str]) -> list[int]:
        seen.append(list(texts))
        return [len(t) for t in texts]

    texts = ["aaaa", "bbbb", "cc", "dddddd", "eeeeeeeee", "f"]
    results = await asyncio.wait_for(asyncio.gather(*(lengths(t) for t in texts)), QUICK_S)

    assert results == [4, 4, 2, 6, 9, 1]
    assert seen == [["aaaa", "bbbb", "cc"], ["dddddd"], ["eeeeeeeee", "f"]]
    assert all(_total_length(b) <= 10 for b in seen)


async def test_an_item_larger_than_max_batch_size_fails_alone() -> None:
    @batch(max_batch_size=3, batch_wait_timeout_s=LONG_WAIT_S, batch_size_fn=_total_length)
    async def lengths(texts: list[str]) -> list[int]:
        return [len(t) for t in texts]

    ok, too_big = await asyncio.wait_for(
        asyncio.gather(lengths("ab"), lengths("abcdef"), return_exceptions=True), QUICK_S
    )
    assert ok == 2
    assert isinstance(too_big, ValueError)
    assert "batch_size_fn sizes one item at 6, more than max_batch_size=3" in str(too_big)
    with pytest.raises(ConfigError, match="'batch_size_fn'"):
        batch(batch_size_fn=3)  # type: ignore[call-overload]


def _total_length(texts: list[str]) -> int:
    return sum(len(t) for t in texts)


async def test_bare_decorator_uses_ray_defaults() -> None:
    @batch
    async def echo(items: list[int]) -> list[int]:
        return items

    assert echo.get_batch_config() == BatchConfig()  # type: ignore[attr-defined]
    assert BatchConfig().max_batch_size == 10
    assert BatchConfig().batch_wait_timeout_s == 0.01
    assert BatchConfig().max_concurrent_batches == 1
    assert await echo(3) == 3


async def test_max_batch_size_one_runs_every_call_alone() -> None:
    recorder = Recorder()
    double = batched(recorder, max_batch_size=1)

    assert await asyncio.gather(*(double(i) for i in range(5))) == [0, 2, 4, 6, 8]
    assert [len(b) for b in recorder.batches] == [1] * 5


async def test_set_max_batch_size_applies_to_the_next_batches() -> None:
    recorder = Recorder()
    double = batched(recorder, max_batch_size=8)
    double.set_max_batch_size(3)

    await asyncio.gather(*(double(i) for i in range(7)))

    assert [len(b) for b in recorder.batches] == [3, 3, 1]
    assert double.get_batch_config().max_batch_size == 3


async def test_setters_validate_their_values() -> None:
    double = batched(Recorder())
    with pytest.raises(ConfigError, match=r"'max_batch_size' = 0"):
        double.set_max_batch_size(0)
    with pytest.raises(ConfigError, match=r"'batch_wait_timeout_s' = -1"):
        double.set_batch_wait_timeout_s(-1)
    double.set_batch_wait_timeout_s(0.5)
    assert double.get_batch_config() == BatchConfig(batch_wait_timeout_s=0.5)


async def test_positional_and_keyword_arguments_are_batched_column_by_column() -> None:
    seen: list[tuple[list[int], list[str]]] = []

    @batch(max_batch_size=4)
    async def label(numbers: list[int], names: list[str]) -> list[str]:
        seen.append((numbers, names))
        return [f"{n}:{s}" for n, s in zip(numbers, names, strict=True)]

    calls = (label(i, names=f"n{i}") for i in range(3))  # type: ignore[arg-type, call-arg]
    results = await asyncio.gather(*calls)

    assert results == ["0:n0", "1:n1", "2:n2"]
    assert seen == [([0, 1, 2], ["n0", "n1", "n2"])]


async def test_calls_of_different_shapes_never_share_a_batch() -> None:
    seen: list[tuple[int, tuple[str, ...]]] = []

    async def record_shape(*columns: list[int], **named: list[int]) -> list[int]:
        seen.append((len(columns), tuple(named)))
        return [0] * len((columns or tuple(named.values()))[0])

    shape: Any = batch(max_batch_size=8)(record_shape)

    await asyncio.gather(shape(1), shape(2), shape(a=1), shape(3, 4), shape(b=5))

    assert sorted(seen) == [(0, ("a",)), (0, ("b",)), (1, ()), (2, ())]


async def test_max_concurrent_batches_lets_batches_overlap() -> None:
    running = 0
    most = 0
    release = asyncio.Event()

    @batch(max_batch_size=2, max_concurrent_batches=2)
    async def slow(items: list[int]) -> list[int]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await release.wait()
        running -= 1
        return items

    calls = asyncio.gather(*(slow(i) for i in range(6)))
    while most < 2:
        await asyncio.sleep(0)
    release.set()

    assert await calls == list(range(6))
    assert most == 2


# -- the adaptive wait ---------------------------------------------------------------------


async def test_a_lone_caller_does_not_wait_for_the_timeout() -> None:
    recorder = Recorder()
    double = batched(recorder, max_batch_size=8, batch_wait_timeout_s=LONG_WAIT_S)

    for i in range(5):
        assert await asyncio.wait_for(double(i), QUICK_S) == 2 * i

    assert [len(b) for b in recorder.batches] == [1] * 5


async def test_a_lone_caller_after_a_burst_does_not_wait_for_the_timeout() -> None:
    recorder = Recorder()
    double = batched(recorder, max_batch_size=8, batch_wait_timeout_s=LONG_WAIT_S)
    await asyncio.gather(*(double(i) for i in range(20)))

    for i in range(3):
        assert await asyncio.wait_for(double(i), QUICK_S) == 2 * i


async def test_closed_loop_callers_fill_batches_of_their_number_without_waiting() -> None:
    recorder = Recorder()
    double = batched(recorder, max_batch_size=8, batch_wait_timeout_s=LONG_WAIT_S)

    async def client(base: int) -> None:
        for i in range(10):
            assert await double(base + i) == 2 * (base + i)

    await asyncio.wait_for(asyncio.gather(*(client(100 * c) for c in range(4))), QUICK_S)

    assert [len(b) for b in recorder.batches] == [4] * 10


def test_a_sequential_caller_never_makes_the_batch_wait() -> None:
    arrivals = _Arrivals()
    config = BatchConfig(max_batch_size=8, batch_wait_timeout_s=LONG_WAIT_S)
    for t in range(100):
        arrivals.record(float(t), in_flight=0)
        assert arrivals.wait_s(float(t), queued=1, running=0, oldest=float(t), config=config) == 0


def test_a_burst_waits_for_its_missing_callers_then_stops_counting_on_them() -> None:
    arrivals = _Arrivals()
    config = BatchConfig(max_batch_size=8, batch_wait_timeout_s=LONG_WAIT_S)
    for i in range(6):  # six callers 1 ms apart, each while the others are in flight
        arrivals.record(i * 0.001, in_flight=i)
    assert arrivals.peak == 6

    # Six are active and three are queued: wait, about four gaps past the last arrival.
    wait = arrivals.wait_s(0.005, queued=3, running=0, oldest=0.0, config=config)
    assert 0.001 < wait <= 0.004 + 1e-9
    # With all six queued, nobody else is expected: start now.
    assert arrivals.wait_s(0.005, queued=6, running=0, oldest=0.0, config=config) == 0
    # Patience ran out with four: start, and count on four from now on.
    assert arrivals.wait_s(0.010, queued=4, running=0, oldest=0.0, config=config) == 0
    assert arrivals.peak == 4
    assert arrivals.wait_s(0.011, queued=4, running=0, oldest=0.0, config=config) == 0


def test_the_wait_never_passes_the_timeout_after_the_oldest_item() -> None:
    arrivals = _Arrivals()
    config = BatchConfig(max_batch_size=8, batch_wait_timeout_s=0.002)
    for i in range(5):  # 1 ms gaps: patience alone would wait 4 ms past the last arrival
        arrivals.record(i * 0.001, in_flight=i)

    wait = arrivals.wait_s(0.004, queued=2, running=0, oldest=0.003, config=config)
    assert wait == pytest.approx(0.001)
    assert arrivals.wait_s(0.0051, queued=2, running=0, oldest=0.003, config=config) == 0


def test_callers_too_slow_to_arrive_before_the_deadline_are_not_waited_for() -> None:
    arrivals = _Arrivals()
    config = BatchConfig(max_batch_size=8, batch_wait_timeout_s=0.01)
    arrivals.record(0.0, in_flight=0)
    arrivals.record(0.05, in_flight=1)  # overlapped a slow call, but 50 ms after it

    assert arrivals.wait_s(0.06, queued=1, running=0, oldest=0.06, config=config) == 0
    assert arrivals.peak == 1


def test_items_in_running_batches_are_not_waited_for() -> None:
    arrivals = _Arrivals()
    config = BatchConfig(max_batch_size=8, batch_wait_timeout_s=LONG_WAIT_S)
    for i in range(6):
        arrivals.record(i * 0.001, in_flight=i)

    assert arrivals.wait_s(0.005, queued=2, running=4, oldest=0.0, config=config) == 0


# -- per-model batches ---------------------------------------------------------------------


async def test_calls_for_different_models_never_share_a_batch() -> None:
    seen: list[tuple[str, list[str]]] = []

    @batch(max_batch_size=8, batch_wait_timeout_s=LONG_WAIT_S)
    async def tag(items: list[str]) -> list[str]:
        seen.append((get_multiplexed_model_id(), items))
        return [f"{get_multiplexed_model_id()}/{x}" for x in items]

    async def call(model: str, item: str) -> str:
        with model_id(model):
            return await tag(item)

    models = ["a", "b", "c"]
    jobs = [call(models[i % 3], f"{models[i % 3]}{i}") for i in range(18)]
    results = await asyncio.wait_for(asyncio.gather(*jobs), QUICK_S)

    assert results == [f"{models[i % 3]}/{models[i % 3]}{i}" for i in range(18)]
    assert sorted(m for m, _ in seen) == ["a", "b", "c"]
    for model, items in seen:
        assert all(item.startswith(model) for item in items)


async def test_calls_without_a_model_id_share_batches() -> None:
    recorder = Recorder()
    double = batched(recorder, max_batch_size=8)
    await asyncio.gather(*(double(i) for i in range(8)))
    assert len(recorder.batches) == 1


# -- errors --------------------------------------------------------------------------------


async def test_wrong_number_of_results_reaches_every_caller_of_the_batch() -> None:
    @batch(max_batch_size=3, batch_wait_timeout_s=LONG_WAIT_S)
    async def short(items: list[int]) -> list[int]:
        return items[:-1]

    outcomes = await asyncio.gather(*(short(i) for i in range(3)), return_exceptions=True)

    assert len(outcomes) == 3
    for outcome in outcomes:
        assert isinstance(outcome, BatchResultError)
        assert "expected 3" in str(outcome)
        assert "got 2" in str(outcome)


async def test_a_non_list_result_reaches_every_caller_of_the_batch() -> None:
    @batch(max_batch_size=2)
    async def broken(items: list[int]) -> list[int]:
        return None  # type: ignore[return-value]

    outcomes = await asyncio.gather(broken(1), broken(2), return_exceptions=True)

    for outcome in outcomes:
        assert isinstance(outcome, BatchResultError)
        assert "NoneType" in str(outcome)


async def test_any_sequence_of_the_right_length_is_accepted() -> None:
    @batch(max_batch_size=4)
    async def as_tuple(items: list[int]) -> tuple[int, ...]:
        return tuple(items)

    assert await asyncio.gather(*(as_tuple(i) for i in range(4))) == [0, 1, 2, 3]


async def test_an_exception_reaches_exactly_the_callers_of_its_batch() -> None:
    @batch(max_batch_size=2, batch_wait_timeout_s=LONG_WAIT_S)
    async def picky(items: list[int]) -> list[int]:
        if 2 in items:
            raise ValueError(f"cannot handle {items}")
        return items

    outcomes = await asyncio.gather(*(picky(i) for i in range(6)), return_exceptions=True)

    assert outcomes[0:2] == [0, 1]
    assert all(isinstance(o, ValueError) for o in outcomes[2:4])
    assert "cannot handle [2, 3]" in str(outcomes[2])
    assert outcomes[4:6] == [4, 5]


async def test_a_caller_cancelled_while_queued_is_not_processed() -> None:
    seen: list[list[int]] = []
    release = asyncio.Event()

    @batch(max_batch_size=1)
    async def gated(items: list[int]) -> list[int]:
        seen.append(items)
        await release.wait()
        return items

    first = asyncio.ensure_future(gated(1))
    while not seen:
        await asyncio.sleep(0)
    second = asyncio.ensure_future(gated(2))
    third = asyncio.ensure_future(gated(3))
    await asyncio.sleep(0)
    second.cancel()
    release.set()

    assert await first == 1
    assert await third == 3
    with pytest.raises(asyncio.CancelledError):
        await second
    assert seen == [[1], [3]]


async def test_a_caller_cancelled_after_dispatch_does_not_disturb_its_batch() -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    @batch(max_batch_size=2)
    async def gated(items: list[int]) -> list[int]:
        started.set()
        await release.wait()
        return items

    leaving = asyncio.ensure_future(gated(1))
    staying = asyncio.ensure_future(gated(2))
    await started.wait()
    leaving.cancel()
    release.set()

    assert await staying == 2
    with pytest.raises(asyncio.CancelledError):
        await leaving


# -- streaming -----------------------------------------------------------------------------


async def test_a_generator_streams_each_caller_its_own_items() -> None:
    batches: list[list[int]] = []

    @batch(max_batch_size=4)
    async def count(items: list[int]) -> AsyncIterator[list[int]]:
        batches.append(items)
        for step in range(3):
            yield [10 * x + step for x in items]

    async def collect(x: int) -> list[int]:
        return [item async for item in count(x)]

    assert inspect.isasyncgenfunction(count)
    results = await asyncio.gather(*(collect(x) for x in (1, 2, 3)))

    assert results == [[10, 11, 12], [20, 21, 22], [30, 31, 32]]
    assert batches == [[1, 2, 3]]


async def test_stop_iteration_ends_one_callers_stream() -> None:
    @batch(max_batch_size=4)
    async def countdown(items: list[int]) -> AsyncIterator[list[int | type[StopIteration]]]:
        for step in range(3):
            yield [step if step < n else StopIteration for n in items]

    async def collect(n: int) -> list[int | type[StopIteration]]:
        return [item async for item in countdown(n)]

    assert list(await asyncio.gather(collect(1), collect(3))) == [[0], [0, 1, 2]]


async def test_a_generator_error_reaches_every_stream_of_its_batch() -> None:
    @batch(max_batch_size=2)
    async def wrong(items: list[int]) -> AsyncIterator[list[int]]:
        yield items
        yield items[:1]

    async def collect(x: int) -> list[int]:
        return [item async for item in wrong(x)]

    outcomes = await asyncio.gather(collect(1), collect(2), return_exceptions=True)

    for outcome in outcomes:
        assert isinstance(outcome, BatchResultError)
        assert "expected 2" in str(outcome)


async def test_a_generator_stops_when_every_caller_has_left() -> None:
    closed = asyncio.Event()

    @batch(max_batch_size=2)
    async def endless(items: list[int]) -> AsyncIterator[list[int]]:
        try:
            while True:
                yield items
                await asyncio.sleep(0)
        finally:
            closed.set()

    async def take_one(x: int) -> int:
        stream = endless(x)
        try:
            return await stream.__anext__()
        finally:
            await stream.aclose()

    assert list(await asyncio.gather(take_one(1), take_one(2))) == [1, 2]
    await asyncio.wait_for(closed.wait(), QUICK_S)


# -- methods -------------------------------------------------------------------------------


class Doubler:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    @batch(max_batch_size=8, batch_wait_timeout_s=LONG_WAIT_S)
    async def double(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        return [2 * x for x in items]


async def test_each_instance_has_its_own_queue() -> None:
    one, two = Doubler(), Doubler()

    results = await asyncio.gather(*(m.double(i) for i in range(6) for m in (one, two)))

    assert results == [2 * i for i in range(6) for _ in (one, two)]
    assert one.batches == [[0, 1, 2, 3, 4, 5]]
    assert two.batches == [[0, 1, 2, 3, 4, 5]]


async def test_a_batched_method_does_not_keep_its_instance_alive() -> None:
    doubler = Doubler()
    assert await doubler.double(4) == 8
    ref = weakref.ref(doubler)
    del doubler
    await asyncio.sleep(0)  # the finished batch's bookkeeping runs one tick after the result
    gc.collect()
    assert ref() is None


async def test_the_method_setters_work_through_the_instance() -> None:
    doubler = Doubler()
    doubler.double.set_max_batch_size(2)  # type: ignore[attr-defined]
    try:
        await asyncio.gather(*(doubler.double(i) for i in range(5)))
        assert [len(b) for b in doubler.batches] == [2, 2, 1]
    finally:
        doubler.double.set_max_batch_size(8)  # type: ignore[attr-defined]


class TaggedDoubler(Doubler):
    @batch(max_batch_size=8)
    async def double(self, items: list[int]) -> list[int]:
        doubled = await asyncio.gather(*(super(TaggedDoubler, self).double(x) for x in items))
        return [-x for x in doubled]


async def test_an_overriding_method_can_call_the_batched_method_it_overrides() -> None:
    tagged = TaggedDoubler()
    assert list(await asyncio.gather(tagged.double(1), tagged.double(2))) == [-2, -4]
    assert tagged.batches == [[1, 2]]


async def test_a_batched_method_is_still_a_coroutine_function() -> None:
    # The replica decides how to call a method by inspecting it.
    assert inspect.iscoroutinefunction(Doubler.double)
    assert inspect.iscoroutinefunction(Doubler().double)


def test_a_batched_function_works_on_successive_event_loops() -> None:
    recorder = Recorder()
    double = batched(recorder, max_batch_size=4)

    async def run() -> list[int]:
        return list(await asyncio.gather(*(double(i) for i in range(4))))

    assert asyncio.run(run()) == [0, 2, 4, 6]
    assert asyncio.run(run()) == [0, 2, 4, 6]


# -- in a deployment ----------------------------------------------------------------------


class _BatchedModel:
    @batch(max_batch_size=4, batch_wait_timeout_s=LONG_WAIT_S)
    async def predict(self, items: list[int]) -> list[dict[str, Any]]:
        model = get_multiplexed_model_id()
        await asyncio.sleep(0.05)  # while this batch runs, the other requests queue up
        return [{"item": x, "model": model, "size": len(items)} for x in items]

    async def __call__(self, item: int) -> dict[str, Any]:
        return await self.predict(item)


BatchedModel = serval.deployment(max_ongoing_requests=64)(_BatchedModel)


def test_a_deployment_batches_per_model_id(serve: str) -> None:
    handle = serval.run(BatchedModel.bind(), name="batched", route_prefix=None)
    lone = handle.remote(7).result(timeout_s=QUICK_S)  # does not wait for LONG_WAIT_S
    assert lone == {"item": 7, "model": "", "size": 1}

    responses = [handle.options(multiplexed_model_id=f"m{i % 2}").remote(i) for i in range(16)]
    results = [response.result(timeout_s=30) for response in responses]

    assert [r["item"] for r in results] == list(range(16))
    assert all(r["model"] == f"m{r['item'] % 2}" for r in results)
    assert all(1 <= r["size"] <= 4 for r in results)


# -- validation at decoration time ---------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "option", "allowed"),
    [
        ({"max_batch_size": 0}, "max_batch_size", "greater than or equal to 1"),
        ({"max_batch_size": 2.5}, "max_batch_size", "valid integer"),
        ({"max_batch_size": True}, "max_batch_size", "valid integer"),
        ({"batch_wait_timeout_s": -0.1}, "batch_wait_timeout_s", "greater than or equal to 0"),
        ({"batch_wait_timeout_s": "1"}, "batch_wait_timeout_s", "valid number"),
        ({"max_concurrent_batches": 0}, "max_concurrent_batches", "greater than or equal to 1"),
    ],
)
def test_invalid_options_fail_at_decoration(
    options: dict[str, Any], option: str, allowed: str
) -> None:
    with pytest.raises(ConfigError) as info:
        batch(**options)
    message = str(info.value)
    assert f"'{option}'" in message
    assert repr(next(iter(options.values()))) in message
    assert allowed in message


def test_a_sync_function_is_refused_at_decoration() -> None:
    def sync(items: list[int]) -> list[int]:
        return items

    with pytest.raises(TypeError, match=r"async def.*sync"):
        batch(sync)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="async def"):
        batch(max_batch_size=2)(sync)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="functions and methods"):
        batch(42)  # type: ignore[call-overload]


def test_option_groups_read_well() -> None:
    assert repr(BatchConfig()) == "BatchConfig()"
    assert repr(BatchConfig(max_batch_size=8)) == "BatchConfig(max_batch_size=8)"
    assert repr(batch(max_batch_size=8)) == "batch(BatchConfig(max_batch_size=8))"
