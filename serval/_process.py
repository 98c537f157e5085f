"""This process's link to a serval instance: its event loop, controller client, routers.

Replicas and proxies run serval on their main event loop. A driver (the user's
script, the CLI) runs it on a background thread, so that blocking calls such as
``serval.run()`` or ``response.result()`` work from plain synchronous code while
routers and subscriptions keep running.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from serval.context import _get_internal_replica_context
from serval.controller.client import ControllerClient
from serval.exceptions import ServalError
from serval.request_router.types import DeploymentHandleSource
from serval.router.router import Router
from serval.transport.messages import ReportLoad

T = TypeVar("T")

LOAD_REPORT_INTERVAL_S = 0.25


class ProcessContext:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        controller_address: str,
        thread: threading.Thread | None = None,
    ) -> None:
        self.loop = loop
        # A driver's calls wait while a supervisor restarts the controller; serval's own
        # processes (proxy, replicas) go on without one and resubscribe later.
        self.controller = ControllerClient(controller_address, wait_for_restart=thread is not None)
        self.controller_address = controller_address
        self._thread = thread
        self._routers: dict[str, Router] = {}
        self._load_reporter: asyncio.Task[None] | None = None

    def router(self, app: str, deployment: str) -> Router:
        """The router for ``app/deployment`` in this process (call on ``self.loop``)."""
        key = f"{app}/{deployment}"
        router = self._routers.get(key)
        if router is None:
            router = self._routers[key] = Router(key, source=self._source())
            if self._load_reporter is None:
                self._load_reporter = self.loop.create_task(self._report_load())
            self.controller.subscribe(f"deployment:{key}", router.on_update)
        return router

    def _source(self) -> DeploymentHandleSource:
        """Who sends through this process's routers (what request routers are told)."""
        if self._thread is not None:
            return DeploymentHandleSource.UNKNOWN  # a driver
        if _get_internal_replica_context() is not None:
            return DeploymentHandleSource.REPLICA
        return DeploymentHandleSource.PROXY

    @property
    def routers(self) -> dict[str, Router]:
        """This process's routers, by ``app/deployment``."""
        return self._routers

    async def _report_load(self) -> None:
        """Tell the controller how many requests each autoscaled deployment has here
        (running + queued), while there are any, and once more when they are done."""
        last: dict[str, int] = {}
        router_id = f"{os.getpid()}-{id(self)}"
        while True:
            await asyncio.sleep(LOAD_REPORT_INTERVAL_S)
            for key, router in list(self._routers.items()):
                if not router.autoscaling:
                    continue
                ongoing = router.in_flight + router.queued
                if ongoing == 0 and last.get(key, 0) == 0:
                    continue
                last[key] = ongoing
                app, _, deployment = key.partition("/")
                try:
                    await self.controller.call(
                        ReportLoad(app, deployment, router_id, ongoing), timeout_s=5
                    )
                except ServalError:
                    pass

    def on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run_sync(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        """Run ``coro`` on serval's loop and wait for it (not from that loop)."""
        if self.on_loop():
            coro.close()
            raise ServalError(
                "this call blocks, and would block serval's event loop: use the async "
                "form (await) inside async code"
            )
        return self.submit(coro).result(timeout_s)

    def close(self) -> None:
        if self._load_reporter is not None:
            self.loop.call_soon_threadsafe(self._load_reporter.cancel)

        async def _close() -> None:
            for router in self._routers.values():
                router.close()
            self._routers.clear()
            self.controller.close()

        if self._thread is not None:
            try:
                self.run_sync(_close(), timeout_s=5)
            except Exception:
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
            self.loop.close()
        else:
            for router in self._routers.values():
                router.close()
            self.controller.close()


_current: ProcessContext | None = None
_lock = threading.Lock()


def current() -> ProcessContext:
    if _current is None:
        raise ServalError(
            "serval is not running in this process: call serval.start() or serval.run() first"
        )
    return _current


def is_connected() -> bool:
    return _current is not None


def init_on_running_loop(controller_address: str) -> ProcessContext:
    """Use the running loop (replicas, proxies: serval owns their main loop)."""
    global _current
    _current = ProcessContext(asyncio.get_running_loop(), controller_address)
    return _current


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover
        return asyncio.new_event_loop()


def init_in_driver(controller_address: str) -> ProcessContext:
    """Start serval's background loop in this process and connect it to the controller."""
    global _current
    with _lock:
        if _current is not None:
            if _current.controller_address == controller_address:
                return _current
            _current.close()
        loop = _new_loop()
        thread = threading.Thread(target=loop.run_forever, name="serval-loop", daemon=True)
        thread.start()
        _current = ProcessContext(loop, controller_address, thread)
        return _current


def reset() -> None:
    """Disconnect this process (after ``serval.shutdown()``)."""
    global _current
    with _lock:
        if _current is not None:
            _current.close()
        _current = None
