"""The supervisor: the process that outlives the controller on the local runtime.

``python -m serval.controller.supervisor --state-dir D [--ready-fd N]
[--http-options J] -- <controller arguments>`` is what a driver starts (``_driver.py``).
It binds the HTTP port once (the controller gets it as ``--http-fd``, so a restarted
controller needs no bind), starts the controller, and restarts it when it dies, after
an exponential backoff. More than ``MAX_CRASHES`` crashes within ``CRASH_WINDOW_S``
end the restarts: the error goes to the log and to ``supervisor.json`` in the state dir,
which ``serval status`` reports, while the proxy and replicas keep serving until
``serval shutdown``.

Lifetimes: the supervisor's stdin is the driver's lifeline (attached instances) or
/dev/null (detached ones). The controller's stdin, which the proxy and replicas inherit,
is a pipe whose write end only the supervisor holds: a controller crash leaves them
running (the next controller adopts them), the supervisor's end ends them all. The
supervisor is a child subreaper (``PR_SET_CHILD_SUBREAPER``): the processes a dead
controller leaves are reparented to it, and it reaps them and, at the end, kills what
is left. A controller that exits with code 0 was told to stop (``serval shutdown``, a
signal, its lifeline): then the supervisor cleans up and exits too.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
from typing import Any

import psutil

from serval.config import HTTPOptions
from serval.controller.supervisor_status import status_path, write_status
from serval.exceptions import ServalError
from serval.observability.logs import setup_logging
from serval.runtime._sockets import bind_http, check_grpc_port

logger = logging.getLogger("serval.supervisor")

MAX_CRASHES = 5  # within CRASH_WINDOW_S: stop restarting
CRASH_WINDOW_S = 60.0
BACKOFF_S = 0.1  # the first restart's delay; doubled for each recent crash
MAX_BACKOFF_S = 5.0
START_TIMEOUT_S = 60.0  # a controller that has not reported ready by then is killed
STOP_TIMEOUT_S = 90.0  # a controller asked to stop (SIGTERM) gets this long
PR_SET_CHILD_SUBREAPER = 36


# -- the supervisor ------------------------------------------------------------------------


class Supervisor:
    def __init__(self, state_dir: str, ready_fd: int, controller_argv: list[str]) -> None:
        self.state_dir = state_dir
        self.ready_fd = ready_fd
        self.controller_argv = controller_argv
        self.stopping = False
        self.controller_pid = 0
        self.controller_exit: int | None = None
        self.crashes: list[float] = []
        self.restarts = 0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        # The controller's stdin: its lifeline, and that of everything it starts.
        self._lifeline_r, self._lifeline_w = os.pipe()

    # -- events ----------------------------------------------------------------------

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_stop_signal)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # (wakes select via the wakeup fd)
        signal.set_wakeup_fd(self._wake_w)
        try:
            if os.isatty(0) or not _is_fifo(0):
                return
        except OSError:
            return
        threading.Thread(target=self._watch_lifeline, daemon=True).start()

    def _on_stop_signal(self, *_: object) -> None:
        self.stopping = True

    def _watch_lifeline(self) -> None:
        """The driver's lifeline (attached instances): end-of-file means it is gone."""
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        logger.info("the driver is gone: stopping serval")
        self.stopping = True
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except OSError:
            pass

    def _wait(self, timeout_s: float, fds: tuple[int, ...] = ()) -> list[int]:
        """Sleep until a signal, a lifeline event, a readable ``fds`` or the timeout;
        reap exited children meanwhile."""
        try:
            ready, _, _ = select.select([self._wake_r, *fds], [], [], max(timeout_s, 0))
        except InterruptedError:
            ready = []
        if self._wake_r in ready:
            try:
                os.read(self._wake_r, 4096)
            except BlockingIOError:
                pass
        self._reap()
        return [fd for fd in ready if fd != self._wake_r]

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.controller_pid:
                self.controller_exit = os.waitstatus_to_exitcode(status)

    # -- the controller ----------------------------------------------------------------

    def _spawn(self, ready_w: int) -> None:
        argv = [sys.executable, "-m", "serval.controller", *self.controller_argv]
        argv += ["--ready-fd", str(ready_w)]
        os.set_inheritable(ready_w, True)
        self.controller_exit = None
        self.controller_pid = os.posix_spawn(
            sys.executable,
            argv,
            dict(os.environ),
            file_actions=[(os.POSIX_SPAWN_DUP2, self._lifeline_r, 0)],
        )

    def _start_controller(self) -> dict[str, Any]:
        """Start the controller; returns its ready report (``ok`` false when it failed)."""
        ready_r, ready_w = os.pipe()
        try:
            self._spawn(ready_w)
        finally:
            os.close(ready_w)
        data = b""
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            while b"\n" not in data:
                if self.stopping or time.monotonic() > deadline:
                    self._stop_controller()
                    why = "serval is stopping" if self.stopping else "it did not start in time"
                    return {"ok": False, "error": f"the controller was stopped: {why}"}
                if self._wait(0.5, (ready_r,)):
                    chunk = os.read(ready_r, 65536)
                    if not chunk:  # it exited (or closed the pipe after its line)
                        break
                    data += chunk
                elif self.controller_exit is not None:
                    break
        finally:
            os.close(ready_r)
        if not data.strip():
            code = self._wait_exit(10.0)
            return {"ok": False, "error": f"the controller exited with code {code}"}
        report: dict[str, Any] = json.loads(data.decode().splitlines()[0])
        return report

    def _wait_exit(self, timeout_s: float) -> int | None:
        deadline = time.monotonic() + timeout_s
        while self.controller_exit is None and time.monotonic() < deadline:
            self._wait(min(1.0, deadline - time.monotonic()))
        return self.controller_exit

    def _stop_controller(self) -> None:
        if self.controller_exit is not None:
            return
        _signal(self.controller_pid, signal.SIGTERM)
        if self._wait_exit(STOP_TIMEOUT_S) is None:
            _signal(self.controller_pid, signal.SIGKILL)
            self._wait_exit(10.0)

    def _report(self, report: dict[str, Any]) -> None:
        if self.ready_fd < 0:
            return
        with os.fdopen(self.ready_fd, "w") as out:
            out.write(json.dumps(report) + "\n")
        self.ready_fd = -1

    # -- the loop -----------------------------------------------------------------------

    def run(self) -> int:
        """Supervise until serval stops; returns the supervisor's exit code."""
        first = True
        self._status("starting")
        try:
            while not self.stopping:
                report = self._start_controller()
                if first:
                    self._report(report)
                    if not report.get("ok"):
                        return 1  # a failed start is the driver's error to show, not a loop
                    first = False
                if report.get("ok"):
                    if self.restarts:
                        logger.info("the controller is back (pid %d)", self.controller_pid)
                    self._status("running")
                    while self.controller_exit is None and not self.stopping:
                        self._wait(5.0)
                    if self.stopping:
                        break
                    code = self.controller_exit
                    if code == 0:
                        return 0  # told to stop (serval shutdown, a signal, its lifeline)
                    error = f"the controller exited with code {code}"
                else:
                    error = f"the controller failed to start: {report.get('error')}"
                if self.stopping:
                    break
                if not self._backoff(error):
                    self._park()
                    break
            return 0
        finally:
            self._stop_controller()
            self._teardown()

    def _backoff(self, error: str) -> bool:
        """Wait before the next restart; False when the crashes are too many."""
        now = time.monotonic()
        self.crashes = [t for t in self.crashes if now - t < CRASH_WINDOW_S] + [now]
        if len(self.crashes) > MAX_CRASHES:
            self.error = (
                f"the serval controller crashed {len(self.crashes)} times within "
                f"{CRASH_WINDOW_S:.0f}s and is no longer restarted; last: {error}. The proxy "
                "and replicas keep serving; see logs/controller*.log in "
                f"{self.state_dir}, then `serval shutdown` and start serval again"
            )
            logger.error("%s", self.error)
            self._status("failed", error=self.error)
            return False
        delay = min(BACKOFF_S * 2 ** (len(self.crashes) - 1), MAX_BACKOFF_S)
        self.restarts += 1
        logger.warning("%s; restarting it in %.1fs (restart %d)", error, delay, self.restarts)
        self._status("restarting", error=error)
        deadline = time.monotonic() + delay
        while not self.stopping and time.monotonic() < deadline:
            self._wait(deadline - time.monotonic())
        return True

    def _park(self) -> None:
        """After too many crashes: keep the data plane until told to stop."""
        while not self.stopping:
            self._wait(5.0)

    def _status(self, state: str, error: str = "") -> None:
        write_status(
            self.state_dir,
            state=state,
            error=error,
            controller_pid=self.controller_pid,
            restarts=self.restarts,
        )

    def _teardown(self) -> None:
        """Close the lifeline (the proxy and replicas exit on their own), then make sure
        no process of this instance is left."""
        os.close(self._lifeline_w)
        os.close(self._lifeline_r)
        me = psutil.Process()
        deadline = time.monotonic() + 10.0
        while _descendants(me) and time.monotonic() < deadline:
            self._wait(0.1)
        for proc in _descendants(me):
            logger.warning("killing %s (pid %d), still running at shutdown", proc.name(), proc.pid)
            try:
                proc.kill()
            except psutil.Error:
                pass
        deadline = time.monotonic() + 10.0
        while _descendants(me) and time.monotonic() < deadline:
            self._wait(0.1)
        try:
            os.unlink(status_path(self.state_dir))
        except FileNotFoundError:
            pass
        logger.info("serval stopped")

    error = ""


def _descendants(me: psutil.Process) -> list[psutil.Process]:
    out = []
    for child in me.children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                out.append(child)
        except psutil.Error:
            pass
    return out


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _is_fifo(fd: int) -> bool:
    import stat

    return stat.S_ISFIFO(os.fstat(fd).st_mode)


def set_child_subreaper() -> bool:
    """Become the parent of orphaned descendants (Linux); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _bind_http(controller_args: list[str]) -> list[str]:
    """Bind the HTTP port once, for every controller to come: ``["--http-fd", N]``
    (and check that the gRPC ingress' port, if any, is free)."""
    options = HTTPOptions()
    if "--http-options" in controller_args:
        raw = controller_args[controller_args.index("--http-options") + 1]
        options = HTTPOptions.model_validate_json(raw)
    if options.location == "NoServer":
        return []
    grpc = options.grpc_options
    if grpc is not None and grpc.grpc_servicer_functions:
        check_grpc_port(options.host, grpc.port)
    sock = bind_http(options.host, options.port)
    _keep.append(sock)
    return ["--http-fd", str(sock.fileno())]


_keep: list[socket.socket] = []  # the HTTP socket lives as long as the supervisor


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m serval.controller.supervisor")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--ready-fd", type=int, default=-1)
    parser.add_argument("controller_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    controller_args = [a for a in args.controller_args if a != "--"]
    setup_logging("supervisor")
    if args.ready_fd >= 0:
        os.set_inheritable(args.ready_fd, False)
    if not set_child_subreaper():
        logger.warning("cannot become a child subreaper: orphaned processes may linger")
    try:
        controller_args += _bind_http(controller_args)
    except ServalError as exc:  # the port is taken: the driver shows why
        Supervisor(args.state_dir, args.ready_fd, [])._report({"ok": False, "error": str(exc)})
        raise SystemExit(1) from None
    supervisor = Supervisor(args.state_dir, args.ready_fd, controller_args)
    supervisor.install()
    code = supervisor.run()
    logging.shutdown()
    raise SystemExit(code)


if __name__ == "__main__":
    main()
