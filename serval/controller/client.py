"""Talking to the controller from any process: calls and subscriptions.

One connection per process. Subscriptions survive a lost connection: the client
dials again with backoff and subscribes again, and the controller answers each
subscription with the current value first.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from serval.exceptions import ControllerError, ReplicaUnavailableError
from serval.transport.address import dial
from serval.transport.codec import error_from_reply
from serval.transport.connection import Connection
from serval.transport.messages import (
    DeleteApps,
    DeployApps,
    ErrorReply,
    GetInfo,
    GetStatus,
    ListDeployments,
    ListModels,
    Message,
    Ok,
    SetUserConfig,
    Subscribe,
    Update,
    WaitApps,
)

logger = logging.getLogger("serval.controller.client")

UpdateCallback = Callable[[Update], None]


class _Lost(Exception):
    """The connection to the controller went away before its answer."""


# Calls that may be sent twice: desired state, and questions.
_IDEMPOTENT = (
    DeployApps,
    DeleteApps,
    GetInfo,
    GetStatus,
    ListDeployments,
    ListModels,
    SetUserConfig,
    WaitApps,
)

RESTART_WAIT_S = 30.0  # how long a call waits for a supervisor to restart the controller


def supervisor_says(address: str) -> str | None:
    """For a local controller that does not answer: None when no supervisor runs for it,
    "" while one restarts it, else why it gave up."""
    if not address.startswith("unix:"):
        return None
    from serval.controller.supervisor_status import read_status

    status = read_status(os.path.dirname(address.removeprefix("unix:")))
    if status is None:
        return None
    return str(status.get("error")) if status.get("state") == "failed" else ""


class ControllerClient:
    def __init__(self, address: str, *, wait_for_restart: bool = False) -> None:
        self.address = address
        self._wait_for_restart = wait_for_restart
        self._conn: Connection | None = None
        self._lock: asyncio.Lock | None = None
        self._subscriptions: dict[str, list[UpdateCallback]] = {}
        self._sub_tasks: dict[str, asyncio.Task[None]] = {}
        self._closed = False

    async def _connection(self) -> Connection:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = await self._dial()
            return self._conn

    async def _dial(self) -> Connection:
        """Dial the controller; while its supervisor restarts it, wait for it."""
        deadline = time.monotonic() + RESTART_WAIT_S
        while True:
            try:
                return await dial(self.address, timeout_s=5.0)
            except ReplicaUnavailableError as exc:
                down = supervisor_says(self.address) if self._wait_for_restart else None
                if down is None or time.monotonic() > deadline:
                    raise ControllerError(
                        f"cannot reach the serval controller at {self.address}: is serval "
                        "running? (serval start, or serval.start() in Python)"
                    ) from exc
                if down:
                    raise ControllerError(down) from exc
            await asyncio.sleep(0.05)

    async def call(self, msg: Message, timeout_s: float | None = 60.0) -> Any:
        """Send ``msg`` and return the value of its ``Ok`` reply; raise on error.

        A declarative call whose connection is lost while a supervisor restarts the
        controller is sent again to the new controller."""
        try:
            return await self._call_once(msg, timeout_s)
        except _Lost as lost:
            restarting = self._wait_for_restart and supervisor_says(self.address) == ""
            if restarting and isinstance(msg, _IDEMPOTENT):
                try:
                    return await self._call_once(msg, timeout_s)
                except _Lost as again:
                    raise ControllerError(str(again)) from None
            raise ControllerError(str(lost)) from None

    async def _call_once(self, msg: Message, timeout_s: float | None) -> Any:
        conn = await self._connection()
        stream = conn.open(msg)
        try:
            reply = await asyncio.wait_for(stream.receive(), timeout_s)
        except asyncio.TimeoutError:
            stream.cancel()
            raise ControllerError(
                f"the controller did not answer {type(msg).__name__} in {timeout_s}s"
            ) from None
        if isinstance(reply, Ok):
            return reply.value
        if isinstance(reply, ErrorReply):
            if reply.kind == "unavailable":
                raise _Lost(f"lost the connection to the controller: {reply.message}")
            raise error_from_reply(reply)
        raise ControllerError(f"unexpected reply {type(reply).__name__} from the controller")

    def subscribe(self, key: str, callback: UpdateCallback) -> None:
        """Call ``callback`` with every update of ``key``, starting with its current value."""
        callbacks = self._subscriptions.setdefault(key, [])
        callbacks.append(callback)
        if key not in self._sub_tasks:
            self._sub_tasks[key] = asyncio.get_running_loop().create_task(self._follow(key))

    async def _follow(self, key: str) -> None:
        delay = 0.05
        while not self._closed:
            try:
                conn = await self._connection()
                stream = conn.open(Subscribe([key]))
                while True:
                    msg = await stream.receive()
                    if isinstance(msg, Update):
                        delay = 0.05
                        for cb in list(self._subscriptions.get(key, [])):
                            try:
                                cb(msg)
                            except Exception:
                                logger.exception("subscriber of %s failed", key)
                    elif isinstance(msg, ErrorReply):
                        break
            except ControllerError:
                pass
            if self._closed:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    def close(self) -> None:
        self._closed = True
        for task in self._sub_tasks.values():
            task.cancel()
        self._sub_tasks.clear()
        if self._conn is not None:
            self._conn.close()
