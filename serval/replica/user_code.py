"""The user's function or class, constructed and called the way serval promises.

Async methods run on the replica's event loop; sync ones in a thread pool (with the
request's context copied in, so ``get_multiplexed_model_id()`` works there too).
Generators stream: sync ones are pulled item by item in the pool.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from serval.exceptions import ServalError

_DONE = object()


@dataclass(frozen=True)
class _Method:
    fn: Callable[..., Any]
    is_async: bool
    is_async_gen: bool
    is_gen: bool


def _describe(fn: Callable[..., Any]) -> _Method:
    target = fn
    if not inspect.isfunction(target) and not inspect.ismethod(target):
        call = getattr(type(target), "__call__", None)  # noqa: B004  (the method, not callable())
        target = call if call is not None else target
    return _Method(
        fn=fn,
        is_async=inspect.iscoroutinefunction(target),
        is_async_gen=inspect.isasyncgenfunction(target),
        is_gen=inspect.isgeneratorfunction(target),
    )


class UserCode:
    """Wraps the deployment's function or class instance."""

    def __init__(self, target: Any, is_function: bool, executor: ThreadPoolExecutor) -> None:
        self._target = target
        self._is_function = is_function
        self._executor = executor
        self._methods: dict[str, _Method] = {}
        self.instance: Any = None

    async def construct(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self._is_function:
            self.instance = self._target
            return
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()
        self.instance = await loop.run_in_executor(
            self._executor, lambda: ctx.run(self._target, *args, **kwargs)
        )
        init_async = getattr(self.instance, "__serval_async_init__", None)
        if init_async is not None:
            await init_async()

    def method(self, name: str) -> _Method:
        m = self._methods.get(name)
        if m is None:
            if self._is_function:
                if name != "__call__":
                    raise ServalError(
                        f"function deployment has no method {name!r}; call handle.remote()"
                    )
                fn = self._target
            else:
                fn = getattr(self.instance, name, None)
                if fn is None or not callable(fn):
                    raise ServalError(
                        f"deployment class {type(self.instance).__name__} has no method {name!r}"
                    )
            m = self._methods[name] = _describe(fn)
        return m

    def has_method(self, name: str) -> bool:
        return not self._is_function and callable(getattr(self.instance, name, None))

    async def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Call a method and return its result (a generator is returned unconsumed)."""
        m = self.method(name)
        if m.is_async:
            return await m.fn(*args, **kwargs)
        if m.is_async_gen or m.is_gen:
            return m.fn(*args, **kwargs)
        ctx = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._executor, lambda: ctx.run(m.fn, *args, **kwargs))
        if inspect.isawaitable(result):
            result = await result
        return result

    async def call_optional(self, name: str, *args: Any) -> bool:
        """Call ``name`` if the instance defines it (reconfigure, check_health)."""
        if not self.has_method(name):
            return False
        await self.call(name, args, {})
        return True

    async def iterate(self, gen: Any) -> AsyncIterator[Any]:
        """Items of a sync or async generator, without blocking the loop."""
        if inspect.isasyncgen(gen):
            async for item in gen:
                yield item
            return
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()
        try:
            while True:
                item = await loop.run_in_executor(self._executor, lambda: ctx.run(next, gen, _DONE))
                if item is _DONE:
                    return
                yield item
        finally:
            try:
                gen.close()
            except ValueError:  # still running in the pool after a cancel; it ends there
                pass


def is_generator(value: Any) -> bool:
    return inspect.isgenerator(value) or inspect.isasyncgen(value)
