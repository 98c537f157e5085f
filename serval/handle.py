"""Handles: call a deployment from Python, in the driver or inside another replica.

Example::

    handle = serval.run(Model.bind(), name="model")
    print(handle.remote(3).result())                 # from sync code
    print(await handle.predict.remote([1, 2]))       # from async code
    async for token in handle.options(stream=True).generate.remote("hi"):
        ...

``remote()`` returns at once; the call runs on serval's event loop. A response may
be passed, unresolved, as an argument of another handle call: it is awaited first.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass
from typing import Any

from serval import _process
from serval.context import get_request_context
from serval.exceptions import RequestCancelledError, RequestTimeoutError, ServalError
from serval.observability import tracing
from serval.observability.process import HANDLE_CALLS
from serval.router.assignment import Assignment
from serval.transport.codec import dumps, error_from_reply, loads
from serval.transport.messages import Call, CallResult, ErrorReply, StreamEnd, StreamItem

__all__ = ["DeploymentHandle", "DeploymentResponse", "DeploymentResponseGenerator"]


@dataclass(frozen=True)
class _Options:
    method_name: str = "__call__"
    multiplexed_model_id: str = ""
    stream: bool = False


_UNSET: Any = object()


class DeploymentHandle:
    """A handle to a deployment of an application (see the module docstring)."""

    def __init__(
        self, deployment_name: str, app_name: str = "default", *, _options: _Options | None = None
    ) -> None:
        self.deployment_name = deployment_name
        self.app_name = app_name
        self._opts = _options or _Options()

    def options(
        self,
        *,
        method_name: Any = _UNSET,
        multiplexed_model_id: Any = _UNSET,
        stream: Any = _UNSET,
        use_new_handle_api: Any = _UNSET,
        **ignored: Any,
    ) -> DeploymentHandle:
        """A handle with some call options changed (Ray Serve's names)."""
        # Built field by field, not with dataclasses.replace (2-3x slower): ingresses call
        # this per request (``handle.options(multiplexed_model_id=...)``).
        o = self._opts
        opts = _Options(
            o.method_name if method_name is _UNSET else str(method_name),
            o.multiplexed_model_id if multiplexed_model_id is _UNSET else str(multiplexed_model_id),
            o.stream if stream is _UNSET else bool(stream),
        )
        return DeploymentHandle(self.deployment_name, self.app_name, _options=opts)

    def __getattr__(self, name: str) -> DeploymentHandle:
        if name.startswith("_"):
            raise AttributeError(name)
        handle = self.options(method_name=name)
        self.__dict__[name] = handle  # ``handle.method`` again is a plain attribute
        return handle

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Call the deployment; returns a DeploymentResponse (or a
        DeploymentResponseGenerator with ``stream=True``)."""
        ctx = _process.current()
        opts = self._opts
        trace = tracing.traceparent() if tracing.enabled() else ""  # the caller's context
        # Inside a request, the call carries its id: one id across the chain in the logs.
        request_id = get_request_context().request_id
        coro = _assign(
            ctx, self.app_name, self.deployment_name, opts, args, kwargs, trace, request_id
        )
        if opts.stream:
            return DeploymentResponseGenerator(ctx, coro)
        return DeploymentResponse(ctx, _unary(coro))

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.deployment_name, self.app_name, self._opts))

    def __repr__(self) -> str:
        return f"DeploymentHandle(deployment={self.deployment_name!r}, app={self.app_name!r})"


def _rebuild(deployment: str, app: str, opts: _Options) -> DeploymentHandle:
    return DeploymentHandle(deployment, app, _options=opts)


async def _assign(
    ctx: _process.ProcessContext,
    app: str,
    deployment: str,
    opts: _Options,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    trace: str = "",
    request_id: str = "",
) -> Assignment:
    if any(isinstance(a, DeploymentResponse) for a in args):
        args = tuple([await a._on_loop() if isinstance(a, DeploymentResponse) else a for a in args])
    if any(isinstance(v, DeploymentResponse) for v in kwargs.values()):
        kwargs = {
            k: await v._on_loop() if isinstance(v, DeploymentResponse) else v
            for k, v in kwargs.items()
        }
    msg = Call(
        opts.method_name,
        dumps((args, kwargs)),
        opts.multiplexed_model_id,
        opts.stream,
        request_id,
        trace,
    )
    HANDLE_CALLS.inc((app, deployment, opts.method_name))
    return await ctx.router(app, deployment).assign(msg)


async def _unary(assigning: Any) -> Any:
    assignment: Assignment = await assigning
    first = assignment.first
    if type(first) is CallResult:
        return loads(first.payload)
    if isinstance(first, ErrorReply):
        raise error_from_reply(first)
    assignment.close()
    raise ServalError(f"unexpected reply {type(first).__name__} to a handle call")


class DeploymentResponse:
    """The future result of ``handle.remote()``: await it, or ``.result()`` it.

    ``cancel()`` stops the request (the replica's handler is cancelled); awaiting it,
    or ``result()``, then raises :class:`~serval.exceptions.RequestCancelledError`, as
    does a call this response was passed into.
    """

    def __init__(self, ctx: _process.ProcessContext, coro: Any) -> None:
        self._ctx = ctx
        self._task: asyncio.Future[Any] | None = None
        self._cfut: concurrent.futures.Future[Any] | None = None
        self._cancelled = False
        if ctx.on_loop():
            self._task = ctx.loop.create_task(coro)
        else:
            self._cfut = ctx.submit(coro)

    async def _on_loop(self) -> Any:
        if self._task is not None:
            return await self._wait(self._task)
        assert self._cfut is not None
        return await self._wait(asyncio.wrap_future(self._cfut))

    def __await__(self) -> Generator[Any, None, Any]:
        if self._task is not None and self._ctx.on_loop():
            return self._wait(self._task).__await__()
        return self._wait(asyncio.wrap_future(self._concurrent())).__await__()

    async def _wait(self, fut: asyncio.Future[Any]) -> Any:
        """``await fut``; once ``cancel()`` was called, RequestCancelledError (when the
        awaiting task itself is cancelled, the CancelledError passes, and reaches fut)."""
        try:
            return await fut
        except asyncio.CancelledError:
            if self._cancelled and fut.cancelled():
                raise _cancelled() from None
            raise

    def _concurrent(self) -> concurrent.futures.Future[Any]:
        if self._cfut is None:
            self._cfut = self._ctx.submit(self._on_loop())
        return self._cfut

    def result(self, timeout_s: float | None = None) -> Any:
        """Block until the result is there (not from async code: ``await`` it there)."""
        if self._ctx.on_loop():
            raise ServalError(
                "DeploymentResponse.result() would block the event loop; "
                "use `await response` in async code"
            )
        try:
            return self._concurrent().result(timeout_s)
        except concurrent.futures.TimeoutError:
            raise RequestTimeoutError(f"no result within timeout_s={timeout_s}") from None
        except concurrent.futures.CancelledError:
            raise _cancelled() from None

    def cancel(self) -> None:
        """Cancel the request: the replica stops its handler, its slot is freed."""
        self._cancelled = True
        if self._task is not None:
            if self._ctx.on_loop():
                self._task.cancel()
            else:
                self._ctx.loop.call_soon_threadsafe(self._task.cancel)
        if self._cfut is not None:
            self._cfut.cancel()


def _cancelled() -> RequestCancelledError:
    return RequestCancelledError("the request was cancelled (DeploymentResponse.cancel())")


_END = object()


class DeploymentResponseGenerator:
    """The streamed result of a ``stream=True`` handle call: iterate it (async or not)."""

    def __init__(self, ctx: _process.ProcessContext, assigning: Any) -> None:
        self._ctx = ctx
        self._assigning = DeploymentResponse(ctx, assigning)  # starts the call now
        self._assignment: Assignment | None = None
        self._cancelled = False

    async def _next_on_loop(self) -> Any:
        if self._cancelled:
            raise _cancelled()
        if self._assignment is None:
            self._assignment = await self._assigning._on_loop()
            msg = self._assignment.first
        else:
            msg = await self._assignment.receive()
        if type(msg) is StreamItem:
            return loads(msg.payload)
        if isinstance(msg, StreamEnd):
            return _END
        if isinstance(msg, ErrorReply):
            raise error_from_reply(msg)
        self._assignment.close()
        raise ServalError(f"unexpected reply {type(msg).__name__} in a stream")

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        if self._ctx.on_loop():
            item = await self._next_on_loop()
        else:
            item = await asyncio.wrap_future(self._ctx.submit(self._next_on_loop()))
        if item is _END:
            raise StopAsyncIteration
        return item

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        item = self._ctx.run_sync(self._next_on_loop())
        if item is _END:
            raise StopIteration
        return item

    def cancel(self) -> None:
        """Cancel the stream: the replica stops its generator; iterating further raises
        :class:`~serval.exceptions.RequestCancelledError`."""
        self._cancelled = True
        self._assigning.cancel()
        if self._assignment is not None:
            self._ctx.loop.call_soon_threadsafe(self._assignment.close)
