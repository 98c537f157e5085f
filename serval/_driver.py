"""Finding or starting the serval instance of this machine, from a driver process.

On the local runtime an instance lives in ``$SERVAL_HOME/<namespace>/`` (controller
socket, replica sockets, logs). ``connect_or_start`` connects to the controller there,
or starts one: attached to this process by a lifeline pipe (it stops when this process
ends, however it ends), or detached (``serval start``), running until
``serval shutdown``.

On the ray runtime the instance is the detached actor ``serval-controller`` in the Ray
namespace ``serval-<namespace>``: found by name (so a second driver attaches to the same
serval), or created on the head node. It lives as long as the Ray cluster, or until
``serval.shutdown()``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

from serval import _process, _secret, _statedir
from serval._env import read_env
from serval.config import HTTPOptions
from serval.controller import supervisor_status as supervisor
from serval.exceptions import ControllerError, ServalError
from serval.transport import auth
from serval.transport.address import unix_address
from serval.transport.messages import GetInfo

START_TIMEOUT_S = 60.0
RESTART_WAIT_S = 30.0  # how long a driver waits for a supervisor to restart the controller

_started: subprocess.Popen[bytes] | None = None
_ray_session: tuple[str, bool] | None = None  # (Ray namespace, whether we started Ray)


def state_dir() -> str:
    env = read_env()
    return os.path.join(env.home, env.namespace)


def controller_address() -> str:
    return unix_address(os.path.join(state_dir(), "controller.sock"))


def controller_answers(address: str) -> bool:
    path = address.removeprefix("unix:")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(path)
        except OSError:
            return False
    return True


def connect() -> dict[str, Any]:
    """Connect to a running instance; raise ControllerError when there is none."""
    env = read_env()
    if env.runtime == "ray":
        return _ray_attach(HTTPOptions(), env.ray_address, create=False)
    address = controller_address()
    if not controller_answers(address):
        _wait_for_restart(address)
    sdir = state_dir()
    _statedir.check_private_dir(env.home)
    _statedir.check_private_dir(sdir)
    auth.set_instance_secret(_secret.read_file(sdir))
    ctx = _process.init_in_driver(address)
    info: dict[str, Any] = ctx.run_sync(ctx.controller.call(GetInfo()), timeout_s=30)
    return info


def connect_or_start(
    http_options: HTTPOptions | None = None,
    *,
    detached: bool = False,
    runtime: str | None = None,
    address: str | None = None,
) -> dict[str, Any]:
    """Connect to this machine's instance, or start one (``address``: the Ray cluster's,
    for the ray runtime)."""
    env = read_env()
    if (runtime or env.runtime) == "ray":
        return _ray_attach(http_options or HTTPOptions(), address or env.ray_address, create=True)
    controller = controller_address()
    if controller_answers(controller):
        return connect()
    # One driver starts the instance; others that come meanwhile wait for it and connect
    # (two starts would each write a secret, and one of them would be wrong).
    sdir = _statedir.prepare_state_dir(env.home, state_dir())
    with _start_lock(sdir):
        if _supervised_controller(controller, sdir):
            return connect()  # started meanwhile, or its controller came back
        return _start(
            controller,
            http_options or HTTPOptions(),
            detached,
            runtime or env.runtime,
            address or env.ray_address,
        )


def _supervised_controller(address: str, sdir: str) -> bool:
    """Whether this machine's instance answers, waiting while a supervisor restarts its
    controller; False when there is no instance to connect to (none, its supervisor
    gave up, or it is exiting)."""
    deadline = time.monotonic() + RESTART_WAIT_S
    while not controller_answers(address):
        status = supervisor.read_status(sdir)
        if status is None or status.get("state") == "failed":
            return False
        if time.monotonic() > deadline:
            raise ControllerError(
                f"the serval controller at {address} did not come back within "
                f"{RESTART_WAIT_S:.0f}s (supervisor: {status.get('state')}); see its log "
                f"in {sdir}/logs"
            )
        time.sleep(0.05)
    return True


@contextlib.contextmanager
def _start_lock(sdir: str) -> Iterator[None]:
    """Held while a driver starts this machine's instance (``<state dir>/start.lock``)."""
    fd = os.open(os.path.join(sdir, "start.lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _start(
    address: str, http_options: HTTPOptions, detached: bool, runtime: str, ray_address: str
) -> dict[str, Any]:
    global _started
    sdir = _statedir.prepare_state_dir(read_env().home, state_dir())
    auth.set_instance_secret(_secret.create_file(sdir))  # a new instance, a new secret
    read_fd, write_fd = os.pipe()
    # The admin token travels in the environment, not on command lines others can read.
    env = dict(os.environ)
    if http_options.admin_token:
        env["SERVAL_ADMIN_TOKEN"] = http_options.admin_token
    # The supervisor starts (and restarts) the controller with the arguments after "--".
    argv = [
        sys.executable,
        "-m",
        "serval.controller.supervisor",
        "--state-dir",
        sdir,
        "--ready-fd",
        str(write_fd),
        "--",
        "--address",
        address,
        "--state-dir",
        sdir,
        "--http-options",
        http_options.model_dump_json(exclude={"admin_token"}),
        "--runtime",
        runtime,
        "--ray-address",
        ray_address,
    ]
    out: Any = None
    if detached:
        out = open(os.path.join(sdir, "logs", "serval.log"), "ab")  # noqa: SIM115
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL if detached else subprocess.PIPE,
            stdout=out,
            stderr=out,
            pass_fds=(write_fd,),
            start_new_session=detached,
            env=env,
        )
    finally:
        os.close(write_fd)
        if out is not None:
            out.close()
    try:
        report = read_ready(read_fd, proc)
    finally:
        os.close(read_fd)
    if not report.get("ok"):
        proc.wait(timeout=10)
        _close_pipes(proc)
        raise ServalError(f"serval could not start: {report.get('error', 'unknown error')}")
    if not detached:
        _started = proc
    else:
        _close_pipes(proc)
    _process.init_in_driver(address)
    return report


def _wait_for_restart(address: str) -> None:
    """The controller does not answer: wait while its supervisor restarts it; raise
    ControllerError when there is no instance, or its supervisor gave up."""
    deadline = time.monotonic() + RESTART_WAIT_S
    while True:
        status = supervisor.read_status(state_dir())
        if status is None:
            raise ControllerError(
                f"no serval instance is running (looked for {address}); start one with "
                "`serval start` or serval.start()"
            )
        if status.get("state") == "failed":
            raise ControllerError(str(status.get("error")))
        if controller_answers(address):
            return
        if time.monotonic() > deadline:
            raise ControllerError(
                f"the serval controller at {address} did not come back within "
                f"{RESTART_WAIT_S:.0f}s (supervisor: {status.get('state')}, "
                f"{status.get('error') or 'no error'}); see its log in {state_dir()}/logs"
            )
        time.sleep(0.05)


def stop_supervisor(timeout_s: float = 60.0) -> None:
    """After a shutdown: wait for this instance's supervisor to clean up and exit; one
    that stays (its controller is gone for good) is told to stop."""
    status = supervisor.read_status(state_dir())
    if status is None:
        return
    pid = int(status["pid"])
    if status.get("state") == "failed":
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while supervisor.read_status(state_dir()) is not None:
        if time.monotonic() > deadline:
            _signal(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
        time.sleep(0.05)


def supervisor_running() -> bool:
    """Whether a supervisor of this machine's instance runs (its controller may not)."""
    return supervisor.read_status(state_dir()) is not None


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def read_ready(fd: int, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    deadline = time.monotonic() + START_TIMEOUT_S
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            proc.kill()
            raise ServalError(f"the serval controller did not start within {START_TIMEOUT_S}s")
        ready, _, _ = select.select([fd], [], [], min(remaining, 0.5))
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            data += chunk
        elif proc.poll() is not None and not data:
            break
    if not data.strip():
        code = proc.wait()
        return {"ok": False, "error": f"the controller exited with code {code} (see its log)"}
    report: dict[str, Any] = json.loads(data.decode().splitlines()[0])
    return report


def _ray_attach(http_options: HTTPOptions, ray_address: str, *, create: bool) -> dict[str, Any]:
    """Attach to the serval on the Ray cluster at ``ray_address`` (creating it when
    ``create``); this process joins the cluster as a Ray driver."""
    global _ray_session
    from serval.runtime import _ray_cluster

    env = read_env()
    namespace = _ray_cluster.ray_namespace(env.namespace)
    was_connected = _ray_cluster.connect(ray_address or None, namespace)
    actor = _ray_cluster.find_controller(namespace)
    if actor is None and not create:
        raise ControllerError(
            f"no serval instance runs on the Ray cluster (namespace {namespace!r}); start "
            "one with serval.start(runtime='ray')"
        )
    if actor is None:
        controller_env = {"SERVAL_LOG_LEVEL": env.log_level}
        token = http_options.admin_token or env.admin_token
        if token:  # in the environment, not on command lines others can read
            controller_env["SERVAL_ADMIN_TOKEN"] = token
        options = http_options.model_dump_json(exclude={"admin_token"})
        _ray_cluster.load_secret(namespace, create=True)
        actor = _ray_cluster.start_controller(namespace, options, controller_env)
    auth.set_instance_secret(_ray_cluster.load_secret(namespace, create=False))
    report = _ray_cluster.controller_info(actor)
    _ray_session = (namespace, not was_connected)
    if not report.get("ok"):
        wait_started_exit()
        raise ServalError(f"serval could not start: {report.get('error', 'unknown error')}")
    _process.init_in_driver(report["address"])
    return report


def _close_pipes(proc: subprocess.Popen[bytes]) -> None:
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def wait_started_exit(timeout_s: float = 30.0) -> None:
    """After a shutdown: reap the controller this process started, if any (on Ray: end
    the controller actor and what is left of serval's actors)."""
    global _started, _ray_session
    if _ray_session is not None:
        namespace, started_ray = _ray_session
        _ray_session = None
        from serval.runtime import _ray_cluster

        _ray_cluster.teardown(namespace, disconnect=started_ray)
    proc, _started = _started, None
    if proc is None:
        return
    _close_pipes(proc)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
