"""The parent side of the protocol with each system's process (benchmarks/systems/).

Every system runs in a process of its own, started with this interpreter as
``python -m benchmarks.systems.<module> ...`` in a new session, so that Ray's imports
and threads never share a process with serval's (or with the load generator), and a
system that hangs or crashes costs its own cells only: its process group is killed and
the error, with the end of its stderr, goes in the table.

Example::

    with serving("ray_apps", "hello", timeout_s=180) as ready:
        gen.measure(ready["url"], 32, 5.0)
    result = run_child("direct", ["handles", "--concurrency", "1,32", ...], timeout_s=60)
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent.parent
TAG = "SERVAL_BENCH"  # benchmarks/systems/_child.py prints it
STDERR_TAIL = 12  # lines of a failed child's stderr kept in the error


class ChildError(RuntimeError):
    """A system's process failed, timed out or said nothing the parent understands."""


def parse_line(line: str) -> dict[str, Any] | None:
    """The message of a tagged line, or None for any other output."""
    if not line.startswith(TAG + " "):
        return None
    msg: dict[str, Any] = json.loads(line[len(TAG) + 1 :])
    return msg


class Child:
    """One system's process; its tagged stdout lines are read on a thread."""

    def __init__(self, module: str, args: Sequence[str], python: str = sys.executable) -> None:
        self.argv = [python, "-m", f"benchmarks.systems.{module}", *args]
        self._proc: subprocess.Popen[str] | None = None
        self._stderr: IO[str] | None = None
        self._messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        self._stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed in stop()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), _pp()]))}
        self._proc = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            start_new_session=True,  # its own process group: stop() reaches Ray's daemons
        )
        assert self._proc.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self._proc.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stdout: IO[str]) -> None:
        with stdout:
            for line in stdout:
                try:
                    msg = parse_line(line.strip())
                except ValueError:
                    continue
                if msg is not None:
                    self._messages.put(msg)
        self._messages.put(None)  # end of output

    def wait_for(self, kind: str, timeout_s: float) -> dict[str, Any]:
        """The next message of ``kind``; ChildError when the process ends or time runs out."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                msg = self._messages.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise ChildError(f"no {kind!r} within {timeout_s:.0f}s{self._tail()}") from None
            if msg is None:
                code = self._proc.wait() if self._proc is not None else None
                raise ChildError(f"exited with code {code} before {kind!r}{self._tail()}")
            if msg.get("kind") == kind:
                return msg

    def _tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.flush()
        self._stderr.seek(0)
        lines = [ln for ln in self._stderr.read().splitlines() if ln.strip()]
        return ("\n" + "\n".join(lines[-STDERR_TAIL:])) if lines else ""

    def stop(self, timeout_s: float = 60.0) -> None:
        """Close stdin (the system shuts down), then kill its process group if needed."""
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(OSError):
                if proc.stdin is not None:
                    proc.stdin.close()
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                pass
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # leftovers: Ray's raylet, LitServe workers
            proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=10)  # it closes stdout at EOF
            self._reader = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


def _pp() -> str:
    return os.environ.get("PYTHONPATH", "")


@contextlib.contextmanager
def serving(
    module: str,
    app: str,
    *,
    timeout_s: float,
    python: str = sys.executable,
    args: Sequence[str] = (),
) -> Iterator[dict[str, Any]]:
    """A system serving ``app`` (``args`` follow it on the command line); yields its
    ready message (``url``, ``startup_s``, and what the system adds)."""
    child = Child(module, ["serve", app, *args], python)
    child.start()
    try:
        yield child.wait_for("ready", timeout_s)
    finally:
        child.stop()


def run_child(
    module: str, args: Sequence[str], *, timeout_s: float, python: str = sys.executable
) -> dict[str, Any]:
    """Run a measuring command to its result message."""
    child = Child(module, args, python)
    child.start()
    try:
        return child.wait_for("result", timeout_s)
    finally:
        child.stop()
