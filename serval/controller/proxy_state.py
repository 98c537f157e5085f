"""The HTTP proxy process as the controller sees it: started, watched, restarted."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from typing import Any

from serval.runtime.base import ProcessHandle, Runtime

logger = logging.getLogger("serval.controller")


class ProxyState:
    def __init__(
        self,
        runtime: Runtime,
        sock: socket.socket,
        controller_address: str,
        options: dict[str, Any],
    ) -> None:
        self.name = "proxy-0"
        self._runtime = runtime
        self._sock = sock
        self._controller_address = controller_address
        self._options = options
        self._process: ProcessHandle | None = None
        self._starting = False
        self._stopped = False
        self.restarts = 0
        self.routes_version = -1  # the route table version this proxy confirmed

    async def start(self) -> None:
        self._starting = True
        try:
            fd = self._sock.fileno()
            self._process = await self._runtime.start_proxy(
                self.name,
                [
                    "--fd",
                    str(fd),
                    "--name",
                    self.name,
                    "--controller",
                    self._controller_address,
                    "--options",
                    json.dumps(self._options),
                ],
                pass_fds=[fd],
            )
        finally:
            self._starting = False

    def ensure_running(self) -> None:
        if self._stopped or self._starting or self._process is None:
            return
        if self._process.exit_code is not None:
            self.restarts += 1
            self.routes_version = -1
            logger.warning(
                "the HTTP proxy exited with code %s; restarting it", self._process.exit_code
            )
            self._starting = True
            asyncio.get_running_loop().create_task(self.start())

    def serving(self) -> bool:
        return self._process is not None and self._process.exit_code is None

    def status(self) -> str:
        if self._process is None or self._process.exit_code is not None:
            return "UNHEALTHY"
        return "HEALTHY"

    async def stop(self) -> None:
        self._stopped = True
        if self._process is not None:
            self._process.kill()
            await self._process.wait()
