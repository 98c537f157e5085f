"""Child processes die with their parent: standard input is a pipe from the parent,
and end-of-file on it means the parent is gone, however it went."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from collections.abc import Callable, Coroutine
from typing import Any


async def watch_lifeline(on_eof: Callable[[], None]) -> None:
    """Call ``on_eof`` when the parent closes our stdin; return at once if stdin is no pipe."""
    try:
        mode = os.fstat(0).st_mode
    except OSError:
        return
    if not stat.S_ISFIFO(mode):
        return
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        pass
    on_eof()


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop where available."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        asyncio.run(main)
        return
    uvloop.run(main)
