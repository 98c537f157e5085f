"""Helpers for tests that start serval for real: free ports, short state dirs, waits."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psutil


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def short_tmpdir(prefix: str = "sv") -> Iterator[str]:
    """A temp dir with a short path (unix socket paths are limited to 107 bytes)."""
    path = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def wait_for(
    predicate: Callable[[], Any],
    timeout_s: float = 20.0,
    interval_s: float = 0.05,
    what: str = "condition",
) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


def serval_children() -> list[psutil.Process]:
    """serval processes started (directly or not) by this test process."""
    out = []
    for child in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if "serval." in " ".join(child.cmdline()):
                out.append(child)
        except psutil.Error:
            pass
    return out


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


class DecodeMarker:
    """A payload whose unpickling creates the file ``path``: a peer's frame built with
    one proves, by the file's absence, that the receiver decoded nothing."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.path, "w"))
