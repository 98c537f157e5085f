"""Helpers for tests that start serval for real: free ports, short state dirs, waits."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

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
