"""A server in a subprocess: started, ready once its port accepts, stopped on exit.

Example::

    port = free_port()
    with ServerProcess([sys.executable, "benchmarks/_bare_app.py", str(port)], port=port):
        ...  # http://127.0.0.1:{port}/ answers here
"""

from __future__ import annotations

import signal
import socket
import subprocess
import tempfile
import time
from types import TracebackType
from typing import IO


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_answers(host: str, port: int, timeout_s: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_for_port(
    host: str, port: int, timeout_s: float = 30.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Return once ``host:port`` accepts; raise if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not port_answers(host, port):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before {port} answered")
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing answered on {host}:{port} within {timeout_s}s")
        time.sleep(0.05)


class ServerProcess:
    """``argv`` run as a server listening on ``host:port``; its output kept for errors."""

    def __init__(
        self, argv: list[str], *, port: int, host: str = "127.0.0.1", start_timeout_s: float = 30
    ) -> None:
        self.argv = argv
        self.host = host
        self.port = port
        self.start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("the server is not running")
        return self._proc.pid

    def start(self) -> None:
        if port_answers(self.host, self.port):
            raise RuntimeError(f"{self.host}:{self.port} is already taken")
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )
        try:
            wait_for_port(self.host, self.port, self.start_timeout_s, self._proc)
        except Exception as exc:
            output = self.output()
            self.stop()
            raise RuntimeError(f"{' '.join(self.argv)} did not start: {exc}\n{output}") from exc

    def output(self) -> str:
        """What the server printed so far."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGINT (a clean uvicorn shutdown), then SIGKILL after ``timeout_s``."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
