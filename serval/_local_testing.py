"""``serval.run(app, _local_testing_mode=True)``: the application inside this process, for
unit tests (Ray Serve's local testing mode).

Every deployment of the application is constructed once, here, on a private event loop
(a background thread, as serval's driver loop), and its handle calls go straight to
that instance: no controller, no replica processes, no proxy, no sockets. What works
as in a real instance: ``handle.remote()`` / ``.options(method_name=, stream=,
multiplexed_model_id=)`` / ``handle.method.remote()``, ``await`` and ``.result()``,
``.cancel()``, responses passed into other calls, composition (bound deployments become
handles in constructors), ``user_config`` → ``reconfigure()``, ``get_replica_context()``,
``get_multiplexed_model_id()``, ``@serval.batch``, and errors (``ReplicaError`` carrying
the original, as from a replica). Not here: HTTP (there is no proxy), several replicas
and autoscaling (one instance per deployment), health checks, request routers, and the
calls that ask a running instance (``status``, ``delete``, ``get_app_handle``).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from serval import _process
from serval import context as ctx_mod
from serval.deployment import Application
from serval.handle import (
    DeploymentHandle,
    DeploymentResponse,
    DeploymentResponseGenerator,
    _cancelled,
    _Options,
)
from serval.replica.user_code import UserCode
from serval.transport.codec import error_from_reply, error_reply

_END = object()


class _LocalRuntime:
    """The loop and thread pool every locally run application of this process shares."""

    def __init__(self) -> None:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="serval-local", daemon=True)
        thread.start()
        # A ProcessContext that never talks to a controller: DeploymentResponse needs
        # only its loop.
        self.ctx = _process.ProcessContext(loop, controller_address="", thread=thread)
        self.executor = ThreadPoolExecutor(thread_name_prefix="serval-local-user")


_runtime: _LocalRuntime | None = None
_runtime_lock = threading.Lock()


def _local_runtime() -> _LocalRuntime:
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = _LocalRuntime()
        return _runtime


@dataclass
class _Replica:
    """One deployment's single in-process instance."""

    app_name: str
    deployment: str
    code: UserCode
    context: ctx_mod.ReplicaContext


def run_local(root: Application, name: str) -> DeploymentHandle:
    """Construct the application ``root`` in this process; returns its ingress handle."""
    runtime = _local_runtime()
    return runtime.ctx.run_sync(_build(runtime, root, name))


async def _build(runtime: _LocalRuntime, root: Application, app_name: str) -> DeploymentHandle:
    built: dict[int, LocalDeploymentHandle] = {}
    taken: set[str] = set()

    async def visit(node: Application) -> LocalDeploymentHandle:
        if id(node) in built:
            return built[id(node)]
        dep = node.deployment
        name, i = dep.name, 0
        while name in taken:
            i += 1
            name = f"{dep.name}_{i}"
        taken.add(name)
        args = await _replace(node.args, visit)
        kwargs = await _replace(node.kwargs, visit)
        target = dep.func_or_class
        code = UserCode(target, not isinstance(target, type), runtime.executor)
        context = ctx_mod.ReplicaContext(
            app_name, name, ctx_mod.ReplicaID(uuid.uuid4().hex[:8], name, app_name)
        )
        token = ctx_mod._local_replica.set(context)
        try:
            await code.construct(tuple(args), kwargs)
            context.servable_object = code.instance
            if dep.user_config is not None:
                await code.call("reconfigure", (dep.user_config,), {})
        finally:
            ctx_mod._local_replica.reset(token)
        handle = LocalDeploymentHandle(
            name, app_name, _replica=_Replica(app_name, name, code, context)
        )
        built[id(node)] = handle
        return handle

    return await visit(root)


async def _replace(value: Any, visit: Any) -> Any:
    if isinstance(value, Application):
        return await visit(value)
    if isinstance(value, tuple | list):
        items = [await _replace(v, visit) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, dict):
        return {k: await _replace(v, visit) for k, v in value.items()}
    return value


class LocalDeploymentHandle(DeploymentHandle):
    """A handle whose calls run the deployment's instance in this process."""

    def __init__(
        self,
        deployment_name: str,
        app_name: str = "default",
        *,
        _options: _Options | None = None,
        _replica: _Replica,
    ) -> None:
        super().__init__(deployment_name, app_name, _options=_options)
        self._replica = _replica

    def options(self, **changes: Any) -> LocalDeploymentHandle:
        changed = super().options(**changes)
        return LocalDeploymentHandle(
            self.deployment_name, self.app_name, _options=changed._opts, _replica=self._replica
        )

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        ctx = _local_runtime().ctx
        call = _call(self._replica, self._opts, args, kwargs)
        if self._opts.stream:
            return LocalResponseGenerator(ctx, call)
        return DeploymentResponse(ctx, _first(call))

    def __reduce__(self) -> tuple[Any, ...]:
        raise TypeError("a local testing mode handle cannot leave its process")

    def __repr__(self) -> str:
        return f"LocalDeploymentHandle(deployment={self.deployment_name!r}, app={self.app_name!r})"


async def _call(replica: _Replica, opts: _Options, args: Any, kwargs: Any) -> Any:
    """Run the method on the instance as a replica would (its contexts set); returns the
    result, or an async iterator of items for a stream. Errors as from a replica."""
    args = tuple([await a._on_loop() if isinstance(a, DeploymentResponse) else a for a in args])
    kwargs = {
        k: await v._on_loop() if isinstance(v, DeploymentResponse) else v for k, v in kwargs.items()
    }
    outer = ctx_mod.get_request_context()
    ctx_mod._local_replica.set(replica.context)  # this task's copy of the context
    ctx_mod._set_request_context(
        ctx_mod.RequestContext(
            request_id=outer.request_id or uuid.uuid4().hex[:12],
            multiplexed_model_id=opts.multiplexed_model_id,
            app_name=replica.app_name,
        )
    )
    try:
        result = await replica.code.call(opts.method_name, args, kwargs)
    except asyncio.CancelledError:
        ctx_mod._mark_cancelled()  # a sync handler still running can ask for it
        raise
    except Exception as exc:
        raise error_from_reply(error_reply(exc)) from None
    if opts.stream:
        return _Stream(replica.code, result)
    return result


async def _first(call: Any) -> Any:
    return await call


class _Stream:
    """A generator's items, produced by one task that keeps the request's contexts (the
    consumer's ``next()`` calls each run in a task of their own)."""

    def __init__(self, code: UserCode, gen: Any) -> None:
        self._queue: asyncio.Queue[tuple[Any, BaseException | None]] = asyncio.Queue(8)
        self._task = asyncio.get_running_loop().create_task(self._produce(code, gen))

    async def _produce(self, code: UserCode, gen: Any) -> None:
        try:
            async for item in code.iterate(gen):
                await self._queue.put((item, None))
        except Exception as exc:
            await self._queue.put((None, error_from_reply(error_reply(exc))))
            return
        await self._queue.put((_END, None))

    async def next(self) -> Any:
        item, exc = await self._queue.get()
        if exc is not None:
            raise exc
        return item

    def cancel(self) -> None:
        self._task.cancel()


class LocalResponseGenerator(DeploymentResponseGenerator):
    """The streamed result of a local ``stream=True`` call (iterate it, async or not)."""

    def __init__(self, ctx: _process.ProcessContext, call: Any) -> None:
        self._ctx = ctx
        self._started = DeploymentResponse(ctx, call)
        self._items: _Stream | None = None
        self._cancelled = False

    async def _next_on_loop(self) -> Any:
        if self._cancelled:
            raise _cancelled()
        if self._items is None:
            self._items = await self._started._on_loop()
        return await self._items.next()

    async def __anext__(self) -> Any:
        if self._ctx.on_loop():
            item = await self._next_on_loop()
        else:
            item = await asyncio.wrap_future(self._ctx.submit(self._next_on_loop()))
        if item is _END:
            raise StopAsyncIteration
        return item

    def __next__(self) -> Any:
        item = self._ctx.run_sync(self._next_on_loop())
        if item is _END:
            raise StopIteration
        return item

    def cancel(self) -> None:
        self._cancelled = True
        self._started.cancel()
        if self._items is not None:
            self._ctx.loop.call_soon_threadsafe(self._items.cancel)
