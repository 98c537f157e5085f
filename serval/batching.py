"""Dynamic request batching: ``@serval.batch``, Ray Serve's ``@serve.batch``.

Each caller passes one item and awaits one result; the decorated function receives a
list of items and returns a list of results, one per item, in the same order::

    @serval.deployment
    class Model:
        @serval.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
        async def predict(self, inputs: list[list[float]]) -> list[float]:
            return self.model(np.array(inputs)).tolist()

        async def __call__(self, request):
            return await self.predict(await request.json())

The rules, Ray Serve's unless marked:

- It decorates ``async def`` methods and plain ``async def`` functions. A method gets one
  queue per instance (kept on the instance, so it goes when the instance goes).
- Several arguments are batched column by column: N calls of ``f(a, b=x)`` become one call
  ``f([a1..aN], b=[x1..xN])``. Calls of different shapes never share a batch (serval).
- An async generator that yields lists streams: each caller gets an async generator of its
  own items. Yielding ``StopIteration`` in a caller's place ends that caller's stream.
- Calls carrying different multiplexed model ids never share a batch; inside the batch
  function ``serval.get_multiplexed_model_id()`` returns the batch's model id.
- A batch function that returns anything but one result per item gives every caller of
  that batch a :class:`~serval.exceptions.BatchResultError`; an exception raised for one
  batch reaches exactly the callers in that batch.
- A caller cancelled while its item waits is taken out of the queue; once its batch has
  started, its result is dropped.
- At most ``max_concurrent_batches`` batches of one function (per instance) run at once.
  ``fn.set_max_batch_size(n)`` and ``fn.set_batch_wait_timeout_s(s)`` change the options
  of every instance; ``fn.get_batch_config()`` returns them.

When a batch starts: the adaptive wait (serval's)
-------------------------------------------------
Ray waits until a batch is full or ``batch_wait_timeout_s`` has passed, so a lone caller
always pays the timeout. serval waits only when waiting can fill the batch:

1. A batch forms when a concurrency slot is free, from the queued items (up to
   ``max_batch_size``). When the first call of an idle queue arrives, the event loop runs
   once more first, so that callers scheduled in the same tick join.
2. serval counts the callers that are active: ``peak`` is the most calls of one model id
   seen in flight at once (queued or in a running batch). A sequential caller never
   overlaps itself, so alone it keeps ``peak`` at 1.
3. If the batch holds ``min(max_batch_size, peak - items already running)`` items, every
   active caller that could join has joined: it starts now.
4. Otherwise it may wait for more. The pace of arrivals is ``gap``, a moving average of
   the time between calls that arrived while others were in flight. If the next call is
   not expected (one gap after the last) before the deadline, ``batch_wait_timeout_s``
   after the batch's oldest item arrived (Ray counts from when the batch began to form),
   it starts now. Else it waits until the deadline or four gaps after the last arrival,
   whichever is first; each arrival is reconsidered at once.
5. A batch that starts short of its count (step 4) shows that the callers counted on are
   not coming: ``peak`` drops to the calls in flight.

So a single sequential caller never waits; N concurrent callers fill batches of
``min(N, max_batch_size)``; at saturation a full batch is queued whenever a slot frees and
no timer is involved; a wrong count costs at most one wait of at most four gaps (never
more than ``batch_wait_timeout_s``), then is corrected.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar, overload

from pydantic import ConfigDict, Field

from serval.config import _Options, validated
from serval.context import _request_context
from serval.exceptions import BatchResultError, ConfigError
from serval.observability.process import BATCH_SIZES

__all__ = ["BatchConfig", "batch"]

T = TypeVar("T")
R = TypeVar("R")
S = TypeVar("S")

_WHERE: Final = "@serval.batch"
_MARK: Final = "_serval_batch"  # attribute of the wrapper: its _BatchedFunction
_PATIENCE_GAPS: Final = 4.0  # how many typical gaps to wait for one more caller
_GAP_SMOOTHING: Final = 0.25  # weight of the newest gap in the moving average
_KEEP_SUBQUEUES: Final = 256  # idle per-model queues kept before pruning
_KEEP_TYPES: Final = 64  # argument types remembered as "is / is not the instance"
_now: Final = time.monotonic  # not loop.time(): uvloop's is cached per loop pass, in ms

# (multiplexed model id, number of positional arguments, keyword names): calls with the
# same key can be batched together.
_Key = tuple[str, int, tuple[str, ...]]
Loop = asyncio.AbstractEventLoop


class BatchConfig(_Options):
    """How ``@serval.batch`` forms batches (Ray Serve's names and defaults).

    Example::

        BatchConfig(max_batch_size=8, batch_wait_timeout_s=0.005)
    """

    model_config = ConfigDict(frozen=True)

    max_batch_size: int = Field(10, ge=1, strict=True)
    batch_wait_timeout_s: float = Field(0.01, ge=0, strict=True, allow_inf_nan=False)
    max_concurrent_batches: int = Field(1, ge=1, strict=True)


# -- the adaptive wait ---------------------------------------------------------------------


@dataclass
class _Arrivals:
    """How many callers of one model id seem active, judged by when their calls arrive.

    The rule is in the module docstring. Times (``time.monotonic()`` seconds) are passed
    in, so the rule can be checked without a loop or a clock.
    """

    peak: int = 1  # most calls seen in flight at once
    gap: float | None = None  # moving average of gaps between overlapping arrivals
    last: float = -math.inf  # when the last call arrived

    def record(self, now: float, in_flight: int) -> None:
        """A call arrived while ``in_flight`` others were queued or running."""
        if in_flight:
            sample = now - self.last
            previous = sample if self.gap is None else self.gap
            self.gap = previous + _GAP_SMOOTHING * (sample - previous)
            self.peak = max(self.peak, in_flight + 1)
        self.last = now

    def wait_s(
        self, now: float, queued: int, running: int, oldest: float, config: BatchConfig
    ) -> float:
        """0 to start a batch of the queued calls now, else how long to wait for more."""
        if queued >= min(config.max_batch_size, self.peak - running):
            return 0.0
        gap = self.gap or 0.0
        deadline = oldest + config.batch_wait_timeout_s
        if self.last + gap <= deadline:  # another call is expected in time
            until = min(deadline, self.last + _PATIENCE_GAPS * gap)
            if until > now:
                return until - now
        self.peak = queued + running  # the callers counted on are not coming in time
        return 0.0


# -- one caller's call ---------------------------------------------------------------------


class _Call(ABC):
    """One caller's arguments and the way back to it."""

    __slots__ = ("args", "arrived", "context", "key", "kwargs")

    def __init__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.args = args
        self.kwargs = kwargs
        self.context = _request_context.get()
        self.key: _Key = (self.context.multiplexed_model_id, len(args), tuple(kwargs))
        self.arrived = _now()

    @property
    @abstractmethod
    def closed(self) -> bool:
        """Nothing more can reach the caller: it has its answer, or it left."""

    @abstractmethod
    def deliver(self, value: Any) -> None: ...

    @abstractmethod
    def fail(self, exc: BaseException) -> None: ...

    @abstractmethod
    def end(self) -> None:
        """No more results are coming."""


class _UnaryCall(_Call):
    __slots__ = ("future",)

    def __init__(self, args: tuple[Any, ...], kwargs: dict[str, Any], loop: Loop) -> None:
        super().__init__(args, kwargs)
        self.future: asyncio.Future[Any] = asyncio.Future(loop=loop)

    @property
    def closed(self) -> bool:
        return self.future.done()

    def deliver(self, value: Any) -> None:
        if not self.future.done():
            self.future.set_result(value)

    def fail(self, exc: BaseException) -> None:
        if self.future.done():
            return
        if isinstance(exc, asyncio.CancelledError):
            self.future.cancel()
        else:
            self.future.set_exception(exc)

    def end(self) -> None:
        pass  # a unary call ends with its result


_ITEM, _END, _ERROR = range(3)


class _StreamCall(_Call):
    __slots__ = ("_closed", "inbox")

    def __init__(self, args: tuple[Any, ...], kwargs: dict[str, Any], loop: Loop) -> None:
        super().__init__(args, kwargs)
        self.inbox: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def deliver(self, value: Any) -> None:
        if not self._closed:
            self.inbox.put_nowait((_ITEM, value))

    def fail(self, exc: BaseException) -> None:
        if not self._closed:
            self._closed = True
            self.inbox.put_nowait((_ERROR, exc))

    def end(self) -> None:
        if not self._closed:
            self._closed = True
            self.inbox.put_nowait((_END, None))

    def leave(self) -> None:
        """The caller stopped iterating; its items are no longer wanted."""
        self._closed = True


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _columns(batch: list[_Call]) -> tuple[list[list[Any]], dict[str, list[Any]]]:
    """N calls of ``f(a, b=x)`` as the arguments of one ``f([a1..aN], b=[x1..xN])``."""
    first = batch[0]
    args = [[call.args[i] for call in batch] for i in range(len(first.args))]
    kwargs = {name: [call.kwargs[name] for call in batch] for name in first.kwargs}
    return args, kwargs


def _one_per_call(results: object, expected: int, name: str) -> list[Any]:
    """``results`` as a list of ``expected`` values, or BatchResultError saying what came."""
    values: list[Any] | None = None
    if not isinstance(results, str | bytes | Mapping):
        try:
            values = list(results)  # type: ignore[call-overload]  # any iterable will do
        except TypeError:
            values = None
    if values is None:
        raise BatchResultError(
            f"{_WHERE} function {name} must return a list with one result per input; "
            f"it returned {type(results).__name__} for a batch of {expected}"
        )
    if len(values) != expected:
        raise BatchResultError(
            f"{_WHERE} function {name} returned the wrong number of results: "
            f"expected {expected} (one per input), got {len(values)}"
        )
    return values


# -- the queues of one function for one instance -------------------------------------------


@dataclass(eq=False)
class _SubQueue:
    """Calls that may share a batch (same model id, same shape) and their arrivals."""

    key: _Key
    waiting: deque[_Call] = field(default_factory=deque)
    running: int = 0  # items of this key in batches that have started and not finished
    arrivals: _Arrivals = field(default_factory=_Arrivals)


class _Batcher:
    """The queues of one batched function for one owner (instance, or None) on one loop.

    It runs no task while idle: a dispatcher task starts with the first queued call and
    ends when the queues are empty, so nothing outlives the calls and a closed event loop
    leaves nothing pending behind.
    """

    def __init__(self, spec: _BatchedFunction, owner: object | None, loop: Loop) -> None:
        self.spec = spec
        self.owner = owner
        self.loop = loop
        self._subqueues: dict[_Key, _SubQueue] = {}
        self._ready: dict[_Key, _SubQueue] = {}  # the non-empty ones, in turn order
        self._prune_at = _KEEP_SUBQUEUES
        self._running_batches = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._dispatcher: asyncio.Task[None] | None = None
        self._waker: asyncio.Future[None] | None = None  # set while the dispatcher sleeps
        self._wake_on_arrival = False

    def __reduce__(self) -> tuple[type[None], tuple[()]]:
        # Copied or pickled with its instance, a batcher becomes None and the copy gets
        # its own queues on first use (futures and tasks cannot travel).
        return (type(None), ())

    # callers' side

    async def stream(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> AsyncGenerator[Any, None]:
        call = _StreamCall(args, kwargs, self.loop)
        self.submit(call)
        try:
            while True:
                kind, value = await call.inbox.get()
                if kind == _END:
                    return
                if kind == _ERROR:
                    raise value
                yield value
        finally:
            call.leave()
            self.withdraw(call)

    def submit(self, call: _Call) -> None:
        sub = self._subqueues.get(call.key)
        if sub is None:
            sub = self._subqueues[call.key] = _SubQueue(call.key)
        sub.arrivals.record(call.arrived, len(sub.waiting) + sub.running)
        sub.waiting.append(call)
        self._ready.setdefault(call.key, sub)
        self._kick(arrival=True)

    def withdraw(self, call: _Call) -> None:
        """Take a departed caller's item out of its queue, if no batch has taken it yet."""
        sub = self._subqueues.get(call.key)
        if sub is None or call not in sub.waiting:
            return
        sub.waiting.remove(call)
        if not sub.waiting:
            del self._ready[call.key]

    def _kick(self, *, arrival: bool) -> None:
        if self._dispatcher is None:
            self._dispatcher = self.loop.create_task(self._dispatch())
        elif self._waker is not None and (self._wake_on_arrival or not arrival):
            _resolve(self._waker)

    # the dispatcher

    async def _dispatch(self) -> None:
        try:
            await asyncio.sleep(0)  # callers scheduled in this same tick join the batch
            while self._ready:
                if self._running_batches >= self.spec.config.max_concurrent_batches:
                    await self._sleep(None, wake_on_arrival=False)
                    continue
                wait_s = self._start_next()
                if wait_s > 0:
                    await self._sleep(wait_s, wake_on_arrival=True)
        finally:
            self._dispatcher = None

    async def _sleep(self, timeout_s: float | None, *, wake_on_arrival: bool) -> None:
        waker = self._waker = self.loop.create_future()
        self._wake_on_arrival = wake_on_arrival
        timer = None if timeout_s is None else self.loop.call_later(timeout_s, _resolve, waker)
        try:
            await waker
        finally:
            self._waker = None
            if timer is not None:
                timer.cancel()

    def _start_next(self) -> float:
        """Start one batch that should not wait; else return how long to wait for calls."""
        config = self.spec.config
        now = _now()
        wait_s = math.inf
        for sub in self._ready.values():
            oldest = sub.waiting[0].arrived
            sub_wait = sub.arrivals.wait_s(now, len(sub.waiting), sub.running, oldest, config)
            if sub_wait <= 0:
                self._start(sub, config.max_batch_size)
                return 0.0
            wait_s = min(wait_s, sub_wait)
        return wait_s

    def _start(self, sub: _SubQueue, max_batch_size: int) -> None:
        batch = self._take(sub, max_batch_size)
        BATCH_SIZES.observe((self.spec.name,), len(batch))
        del self._ready[sub.key]
        if sub.waiting:  # to the back of the line: other model ids go first
            self._ready[sub.key] = sub
        sub.running += len(batch)
        self._running_batches += 1
        task = self.loop.create_task(self._run(sub, batch))
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _take(self, sub: _SubQueue, max_batch_size: int) -> list[_Call]:
        """The next batch: up to ``max_batch_size`` calls, or with ``batch_size_fn``, the
        longest run of calls whose items it sizes at most ``max_batch_size`` (as Ray
        Serve does: a call too large on its own fails with a clear error)."""
        size_fn = self.spec.batch_size_fn
        if size_fn is None:
            return [sub.waiting.popleft() for _ in range(min(max_batch_size, len(sub.waiting)))]
        batch: list[_Call] = []
        items: list[Any] = []
        while sub.waiting:
            call = sub.waiting[0]
            item = call.args[0] if call.args else next(iter(call.kwargs.values()), None)
            size = size_fn([*items, item])
            if size > max_batch_size:
                if batch:
                    break
                sub.waiting.popleft()
                call.fail(
                    ValueError(
                        f"{_WHERE} {self.spec.name}: batch_size_fn sizes one item at {size}, "
                        f"more than max_batch_size={max_batch_size}; raise max_batch_size "
                        "or check batch_size_fn"
                    )
                )
                continue
            batch.append(sub.waiting.popleft())
            items.append(item)
        return batch

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._running_batches -= 1
        if not task.cancelled():
            task.exception()  # _run hands errors to the callers; this only marks it seen
        if len(self._subqueues) > self._prune_at:
            self._prune()
        if self._ready:
            self._kick(arrival=False)

    def _prune(self) -> None:
        """Forget idle per-model queues, so thousands of model ids do not pile up."""
        for key, sub in list(self._subqueues.items()):
            if not sub.waiting and not sub.running:
                del self._subqueues[key]
        self._prune_at = max(_KEEP_SUBQUEUES, 2 * len(self._subqueues))

    # one batch

    async def _run(self, sub: _SubQueue, batch: list[_Call]) -> None:
        # This task runs in its own copy of the context: the batch function sees the
        # batch's model id (all its calls share it) through get_multiplexed_model_id().
        _request_context.set(batch[0].context)
        columns, kwargs = _columns(batch)
        args: list[Any] = columns if self.owner is None else [self.owner, *columns]
        try:
            if self.spec.streaming:
                await self._stream_batch(self.spec.fn(*args, **kwargs), batch)
            else:
                results = await self.spec.fn(*args, **kwargs)
                for call, value in zip(
                    batch, _one_per_call(results, len(batch), self.spec.name), strict=True
                ):
                    call.deliver(value)
        except BaseException as exc:
            for call in batch:
                call.fail(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            sub.running -= len(batch)

    async def _stream_batch(self, chunks: AsyncGenerator[Any, None], batch: list[_Call]) -> None:
        async with aclosing(chunks):
            async for chunk in chunks:
                values = _one_per_call(chunk, len(batch), self.spec.name)
                for call, value in zip(batch, values, strict=True):
                    if value is StopIteration or value is StopAsyncIteration:
                        call.end()
                    else:
                        call.deliver(value)
                if all(call.closed for call in batch):
                    break  # every caller has ended or left: stop the generator
        for call in batch:
            call.end()


# -- the decorator -------------------------------------------------------------------------


class _BatchedFunction:
    """One decorated function: its options (shared by all instances) and its batchers."""

    def __init__(
        self,
        fn: Callable[..., Any],
        config: BatchConfig,
        batch_size_fn: Callable[[list[Any]], int] | None = None,
    ) -> None:
        self.fn = fn
        self.config = config
        self.batch_size_fn = batch_size_fn
        self.name = getattr(fn, "__qualname__", repr(fn))
        self.attr = getattr(fn, "__name__", "")
        self.slot = f"_serval_batcher__{self.name}"  # where an instance keeps its queues
        self.streaming = inspect.isasyncgenfunction(fn)
        self._function_batcher: _Batcher | None = None  # a plain function's, made on use
        self._owner_types: dict[type, bool] = {}  # first argument's type -> is it `self`?

    def split(self, args: tuple[Any, ...]) -> tuple[object | None, tuple[Any, ...]]:
        """(instance, items) for a method call, (None, items) for a function call."""
        if not args:
            return None, args
        kind = type(args[0])
        is_owner = self._owner_types.get(kind)
        if is_owner is None:  # is this function defined on the first argument's class?
            # Walk the MRO rather than getattr(): a subclass that overrides the method
            # and calls super() must still be recognised as the instance.
            is_owner = any(
                getattr(vars(base).get(self.attr), _MARK, None) is self for base in kind.__mro__
            )
            if len(self._owner_types) >= _KEEP_TYPES:
                self._owner_types.clear()
            self._owner_types[kind] = is_owner
        return (args[0], args[1:]) if is_owner else (None, args)

    def batcher(self, owner: object | None) -> _Batcher:
        loop = asyncio.get_running_loop()
        if owner is None:
            found = self._function_batcher
            if found is None or found.loop is not loop:
                found = self._function_batcher = _Batcher(self, None, loop)
            return found
        try:
            store = vars(owner)
        except TypeError:
            raise TypeError(
                f"{_WHERE} method {self.name} keeps its queue on the instance, but "
                f"{type(owner).__name__} instances have no __dict__ (only __slots__)"
            ) from None
        found = store.get(self.slot)
        if not isinstance(found, _Batcher) or found.loop is not loop or found.owner is not owner:
            found = store[self.slot] = _Batcher(self, owner, loop)
        return found

    def set_max_batch_size(self, max_batch_size: int) -> None:
        """Change ``max_batch_size`` for every instance; applies to the next batch."""
        self._update(max_batch_size=max_batch_size)

    def set_batch_wait_timeout_s(self, batch_wait_timeout_s: float) -> None:
        """Change ``batch_wait_timeout_s`` for every instance; applies to the next batch."""
        self._update(batch_wait_timeout_s=batch_wait_timeout_s)

    def get_batch_config(self) -> BatchConfig:
        return self.config

    def _update(self, **changes: Any) -> None:
        self.config = validated(BatchConfig, {**self.config.model_dump(), **changes}, _WHERE)


def _unary_wrapper(spec: _BatchedFunction) -> Callable[..., Any]:
    @functools.wraps(spec.fn)
    async def batched(*args: Any, **kwargs: Any) -> Any:
        owner, items = spec.split(args)
        batcher = spec.batcher(owner)
        call = _UnaryCall(items, kwargs, batcher.loop)
        batcher.submit(call)
        try:
            return await call.future
        except asyncio.CancelledError:
            batcher.withdraw(call)  # still queued: nobody will compute it
            raise

    return batched


def _streaming_wrapper(spec: _BatchedFunction) -> Callable[..., Any]:
    @functools.wraps(spec.fn)
    async def batched(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        owner, items = spec.split(args)
        async with aclosing(spec.batcher(owner).stream(items, kwargs)) as stream:
            async for item in stream:
                yield item

    return batched


def _decorate(
    fn: Callable[..., Any],
    config: BatchConfig,
    batch_size_fn: Callable[[list[Any]], int] | None = None,
) -> Callable[..., Any]:
    if not callable(fn):
        raise TypeError(f"{_WHERE} decorates functions and methods, not {fn!r}")
    if not (inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)):
        name = getattr(fn, "__qualname__", repr(fn))
        raise TypeError(
            f"{_WHERE} needs an 'async def' function or async generator; {name} is not: "
            "declare it 'async def' (it receives a list of items and returns a list)"
        )
    spec = _BatchedFunction(fn, config, batch_size_fn)
    wrapper = _streaming_wrapper(spec) if spec.streaming else _unary_wrapper(spec)
    vars(wrapper).update(
        {
            _MARK: spec,
            "set_max_batch_size": spec.set_max_batch_size,
            "set_batch_wait_timeout_s": spec.set_batch_wait_timeout_s,
            "get_batch_config": spec.get_batch_config,
        }
    )
    return wrapper


class _BatchDecorator:
    """What ``@serval.batch(...)`` returns: applies its options to a function."""

    def __init__(
        self, config: BatchConfig, batch_size_fn: Callable[[list[Any]], int] | None = None
    ) -> None:
        self.config = config
        self.batch_size_fn = batch_size_fn

    def __repr__(self) -> str:
        return f"batch({self.config!r})"

    @overload
    def __call__(
        self, func: Callable[[list[T]], Coroutine[Any, Any, Sequence[R]]], /
    ) -> Callable[[T], Coroutine[Any, Any, R]]: ...
    @overload
    def __call__(
        self, func: Callable[[S, list[T]], Coroutine[Any, Any, Sequence[R]]], /
    ) -> Callable[[S, T], Coroutine[Any, Any, R]]: ...
    @overload
    def __call__(
        self, func: Callable[[list[T]], AsyncIterator[Sequence[R]]], /
    ) -> Callable[[T], AsyncGenerator[R, None]]: ...
    @overload
    def __call__(
        self, func: Callable[[S, list[T]], AsyncIterator[Sequence[R]]], /
    ) -> Callable[[S, T], AsyncGenerator[R, None]]: ...
    def __call__(self, func: Callable[..., Any], /) -> Callable[..., Any]:
        return _decorate(func, self.config, self.batch_size_fn)


@overload
def batch(
    func: Callable[[list[T]], Coroutine[Any, Any, Sequence[R]]], /
) -> Callable[[T], Coroutine[Any, Any, R]]: ...
@overload
def batch(
    func: Callable[[S, list[T]], Coroutine[Any, Any, Sequence[R]]], /
) -> Callable[[S, T], Coroutine[Any, Any, R]]: ...
@overload
def batch(
    func: Callable[[list[T]], AsyncIterator[Sequence[R]]], /
) -> Callable[[T], AsyncGenerator[R, None]]: ...
@overload
def batch(
    func: Callable[[S, list[T]], AsyncIterator[Sequence[R]]], /
) -> Callable[[S, T], AsyncGenerator[R, None]]: ...
@overload
def batch(
    func: None = None,
    /,
    *,
    max_batch_size: int = 10,
    batch_wait_timeout_s: float = 0.01,
    max_concurrent_batches: int = 1,
    batch_size_fn: Callable[[list[Any]], int] | None = None,
) -> _BatchDecorator: ...
def batch(
    func: Callable[..., Any] | None = None,
    /,
    *,
    max_batch_size: int = 10,
    batch_wait_timeout_s: float = 0.01,
    max_concurrent_batches: int = 1,
    batch_size_fn: Callable[[list[Any]], int] | None = None,
) -> Callable[..., Any] | _BatchDecorator:
    """Batch the calls of an async function or method (Ray Serve's ``@serve.batch``).

    Each caller passes one item and awaits one result; the function receives a list and
    returns a list of the same length. A batch starts when it is full, when no other
    caller is expected (see the module docs), or ``batch_wait_timeout_s`` after its oldest
    item arrived. Invalid options raise :class:`~serval.exceptions.ConfigError` here.

    ``batch_size_fn`` (Ray Serve's option) sizes a batch from its items (say, total
    tokens) in place of counting them: a batch then holds as many calls as fit in
    ``max_batch_size`` by that measure.

    Typed like Ray's: a function ``list[T] -> Sequence[R]`` (or such a method) becomes
    ``T -> R`` for mypy; other shapes (several columns, an ndarray result) need a cast.

    Example::

        @serval.deployment
        class Model:
            @serval.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
            async def predict(self, texts: list[str]) -> list[int]:
                return [len(t) for t in texts]

            async def __call__(self, request):
                return await self.predict(request.query_params["text"])
    """
    config = validated(
        BatchConfig,
        {
            "max_batch_size": max_batch_size,
            "batch_wait_timeout_s": batch_wait_timeout_s,
            "max_concurrent_batches": max_concurrent_batches,
        },
        _WHERE,
    )
    if batch_size_fn is not None and not callable(batch_size_fn):
        raise ConfigError(
            f"invalid {_WHERE} option 'batch_size_fn' = {batch_size_fn!r}: must be a callable "
            "taking the list of items and returning an int"
        )
    if func is None:
        return _BatchDecorator(config, batch_size_fn)
    return _decorate(func, config, batch_size_fn)
