"""Traffic splitting between a stable application and its canary, in the proxy.

Picks the version of each request (by weight, or by a hash of a sticky header so a
user keeps one version), sends shadow copies, and counts requests, errors (5xx) and
latency per version, reporting them to the controller once a second.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from serval._process import ProcessContext
from serval.exceptions import ServalError
from serval.transport.messages import CanaryRoute, Headers, HttpRequest, ReportTraffic

REPORT_INTERVAL_S = 1.0
_MAX_SAMPLES = 2000


@dataclass
class _Counts:
    requests: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)


class TrafficSplit:
    def __init__(self, ctx: ProcessContext) -> None:
        self._ctx = ctx
        self._counts: dict[tuple[str, str], _Counts] = {}
        self._reporter: asyncio.Task[None] | None = None
        self._shadows: set[asyncio.Task[Any]] = set()

    @staticmethod
    def pick(canary: CanaryRoute, headers: Headers) -> bool:
        """True when this request goes to the canary."""
        if canary.sticky_header:
            wanted = canary.sticky_header.lower().encode()
            for name, value in headers:
                if name == wanted:
                    bucket = int.from_bytes(hashlib.blake2b(value, digest_size=4).digest(), "big")
                    return bucket / 2**32 < canary.weight
        return random.random() < canary.weight

    def shadow(
        self,
        canary: CanaryRoute,
        request: HttpRequest,
        forward: Callable[[str, str, HttpRequest], Awaitable[int]],
    ) -> None:
        async def run() -> None:
            started = asyncio.get_running_loop().time()
            status = await forward(canary.app, canary.deployment, request)
            self._count(
                self._owner_of(canary),
                "canary",
                status,
                asyncio.get_running_loop().time() - started,
            )

        task = asyncio.get_running_loop().create_task(run())
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)

    @staticmethod
    def _owner_of(canary: CanaryRoute) -> str:
        from serval.canary import CANARY_SUFFIX

        return canary.app.removesuffix(CANARY_SUFFIX)

    def record(self, app: str, to_canary: bool, status: int, seconds: float) -> None:
        self._count(app, "canary" if to_canary else "stable", status, seconds)

    def _count(self, app: str, version: str, status: int, seconds: float) -> None:
        counts = self._counts.get((app, version))
        if counts is None:
            counts = self._counts[(app, version)] = _Counts()
        counts.requests += 1
        counts.errors += status >= 500
        if len(counts.latencies_ms) < _MAX_SAMPLES:
            counts.latencies_ms.append(seconds * 1000)
        if self._reporter is None:
            self._reporter = asyncio.get_running_loop().create_task(self._report())

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(REPORT_INTERVAL_S)
            counts, self._counts = self._counts, {}
            for (app, version), c in counts.items():
                try:
                    await self._ctx.controller.call(
                        ReportTraffic(app, version, c.requests, c.errors, c.latencies_ms),
                        timeout_s=5,
                    )
                except ServalError:
                    pass
