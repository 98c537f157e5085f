"""The HTTP proxies as the controller sees them: started, watched, restarted.

One proxy beside the controller on the local runtime (on the socket the controller
bound). On Ray, one on the head node (``location="HeadOnly"``) or one on every node
(``"EveryNode"``, new nodes get one as they join); the runtime binds the port there.
A proxy confirms each route table it applied, so ``serval.run()`` can wait for all.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from dataclasses import dataclass
from typing import Any

from serval.runtime._sockets import WILDCARD_HOSTS
from serval.runtime.base import ProcessHandle, Runtime

logger = logging.getLogger("serval.controller")

NODES_REFRESH_S = 2.0  # how often EveryNode looks for nodes that joined or left


@dataclass(eq=False)
class Proxy:
    name: str
    node: str
    process: ProcessHandle | None = None
    starting: bool = False
    restarts: int = 0
    routes_version: int = -1  # the route table version this proxy confirmed


class ProxyState:
    def __init__(
        self,
        runtime: Runtime,
        controller_address: str,
        options: dict[str, Any],
        sock: socket.socket | None = None,
    ) -> None:
        self._runtime = runtime
        self._sock = sock
        self._controller_address = controller_address
        self._options = options
        self._location = str(options.get("location", "HeadOnly"))
        self.proxies: dict[str, Proxy] = {}
        self._stopped = False
        self._nodes_checked = 0.0
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Start (or adopt) the proxies; raises when one cannot serve (port taken)."""
        self._nodes_checked = time.monotonic()
        nodes = await self._runtime.proxy_nodes(self._location)
        for node in nodes:
            self.proxies[node] = Proxy(_name(node), node)
        await asyncio.gather(*(self._start(p) for p in self.proxies.values()))

    async def _start(self, proxy: Proxy) -> None:
        proxy.starting = True
        try:
            args = ["--name", proxy.name, "--controller", self._controller_address]
            args += ["--options", json.dumps(self._options)]
            if self._sock is not None:
                fd = self._sock.fileno()
                proxy.process = await self._runtime.start_proxy(
                    proxy.name, ["--fd", str(fd), *args], pass_fds=[fd], node=proxy.node
                )
            else:
                host = str(self._options.get("host", ""))
                if self._location == "EveryNode" and host not in WILDCARD_HOSTS:
                    host = ""  # each node's proxy listens on that node's address
                http = (host, int(self._options.get("port", 0)))
                proxy.process = await self._runtime.start_proxy(
                    proxy.name, args, node=proxy.node, http=http
                )
        finally:
            proxy.starting = False

    def ensure_running(self) -> None:
        """Restart proxies that exited; on EveryNode, follow the nodes now and then."""
        if self._stopped:
            return
        for proxy in self.proxies.values():
            if proxy.starting or proxy.process is None or proxy.process.exit_code is None:
                continue
            proxy.restarts += 1
            proxy.routes_version = -1
            logger.warning(
                "the HTTP proxy %s exited with code %s; restarting it",
                proxy.name,
                proxy.process.exit_code,
            )
            self._spawn(self._restart(proxy))
        now = time.monotonic()
        if self._location == "EveryNode" and now - self._nodes_checked > NODES_REFRESH_S:
            self._nodes_checked = now
            self._spawn(self._follow_nodes())

    async def _restart(self, proxy: Proxy) -> None:
        try:
            await self._start(proxy)
        except Exception as exc:
            logger.error("cannot restart the HTTP proxy %s: %s", proxy.name, exc)

    async def _follow_nodes(self) -> None:
        nodes = set(await self._runtime.proxy_nodes(self._location))
        for node in list(self.proxies):
            if node not in nodes and not self.proxies[node].starting:
                logger.info("node %s left: dropping its proxy", node)
                del self.proxies[node]
        for node in nodes - set(self.proxies):
            logger.info("node %s joined: starting a proxy there", node)
            proxy = self.proxies[node] = Proxy(_name(node), node)
            proxy.starting = True
            self._spawn(self._restart(proxy))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- route tables ---------------------------------------------------------------

    def routes_applied(self, name: str, version: int) -> None:
        for proxy in self.proxies.values():
            if proxy.name == name:
                proxy.routes_version = max(proxy.routes_version, version)

    def caught_up(self, version: int) -> bool:
        """Whether every serving proxy routes with route table ``version``."""
        return all(
            p.routes_version >= version
            for p in self.proxies.values()
            if p.process is not None and p.process.exit_code is None
        )

    # -- status -----------------------------------------------------------------------

    def statuses(self) -> dict[str, str]:
        return {p.name: _status(p) for p in self.proxies.values()}

    def urls(self) -> dict[str, str]:
        return {
            p.name: p.process.address
            for p in self.proxies.values()
            if p.process is not None and p.process.address
        }

    async def stop(self) -> None:
        self._stopped = True
        for task in self._tasks:
            task.cancel()
        procs = [p.process for p in self.proxies.values() if p.process is not None]
        for proc in procs:
            proc.kill()
        for proc in procs:
            await proc.wait()


def _name(node: str) -> str:
    return f"proxy-{node[:12]}" if node else "proxy-0"


def _status(proxy: Proxy) -> str:
    if proxy.process is None or proxy.process.exit_code is not None:
        return "UNHEALTHY"
    return "HEALTHY"
