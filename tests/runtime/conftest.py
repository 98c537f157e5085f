"""A serval on a fresh local Ray instance, and a load generator that records outcomes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import serval


@pytest.fixture
def ray_serve(serval_home: str, http_port: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """serval on the ray runtime (a new local Ray instance); yields the proxy's URL."""
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    serval.start(http_options={"port": http_port}, runtime="ray")
    yield f"http://127.0.0.1:{http_port}"


class Load:
    """Sends requests from a few threads until stopped; records every outcome.

    A request that takes longer than ``timeout_s`` counts as hanging (a failure).
    """

    def __init__(self, url: str, threads: int = 4, timeout_s: float = 20.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.stop = threading.Event()
        self.ok: list[dict[str, Any]] = []
        self.failures: list[str] = []
        self.slowest_s = 0.0
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout_s) as c:
            while not self.stop.is_set():
                start = time.monotonic()
                try:
                    r = c.get(self.url)
                    if r.status_code == 200:
                        self.ok.append(r.json())
                    else:
                        self.failures.append(f"{r.status_code}: {r.text}")
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                self.slowest_s = max(self.slowest_s, time.monotonic() - start)

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self._threads:
            t.join()
