"""The supervised controller on the local runtime, with real processes: kill -9 of the
controller under load, adoption, crash-loop bounds, a corrupted checkpoint."""

from __future__ import annotations

import asyncio
import glob
import os
import signal
import subprocess
import sys
import time

import httpx
import psutil
from starlette.requests import Request

import serval
import serval as serve
from serval import _driver
from serval.controller import supervisor, supervisor_status
from tests.utils import Load, serval_children, wait_for

FAST_STOP = {"graceful_shutdown_wait_loop_s": 0.3, "graceful_shutdown_timeout_s": 5}


@serve.deployment(num_replicas=2, **FAST_STOP)
class Versioned:
    def __init__(self, version: str) -> None:
        self.version = version

    async def __call__(self, request: Request) -> dict:
        await asyncio.sleep(0.005)
        return {"version": self.version, "pid": os.getpid()}


def _controller_pid() -> int:
    return int(_driver.connect()["pid"])


def _instance_processes(home: str) -> list[psutil.Process]:
    """Every process of the instance in ``home``, whoever its parent is now."""
    out = []
    for proc in psutil.process_iter():
        try:
            argv = " ".join(proc.cmdline())
            ours = home in argv or home in proc.environ().get("SERVAL_HOME", "")
            if "serval." in argv and ours and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
        except psutil.Error:
            pass
    return out


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not psutil.pid_exists(pid) or _zombie(pid), what=f"pid {pid} to die")


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _serval_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "serval.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "300"},
    )


def test_controller_killed_under_load_comes_back_and_adopts(serve: str, serval_home: str) -> None:
    serval.run(Versioned.bind("v1"), name="v", route_prefix="/v")
    sup = supervisor_status.read_status(_driver.state_dir())
    assert sup is not None
    first = _controller_pid()
    with Load(f"{serve}/v") as load:
        wait_for(lambda: len(load.ok) > 50, what="traffic")
        killed_at = time.monotonic()
        os.kill(first, signal.SIGKILL)
        st = serval.status()  # waits for the supervisor's new controller
        back_s = time.monotonic() - killed_at
        assert "v" in st.applications
        second = _controller_pid()
        assert second != first
        print(f"\nkill -9 of the controller -> serve.status() answered after {back_s:.2f}s")
        # A deploy issued after the kill succeeds.
        serval.run(Versioned.bind("v2"), name="w", route_prefix="/w")
        assert httpx.get(f"{serve}/w", timeout=30).json()["version"] == "v2"

        # A replica that dies while there is no controller (its supervisor held still,
        # so that none can come back meanwhile) is replaced once one is back.
        victim = load.ok[-1]["pid"]
        os.kill(sup["pid"], signal.SIGSTOP)
        try:
            _kill(second)
            _kill(victim)
        finally:
            os.kill(sup["pid"], signal.SIGCONT)
        wait_for(
            lambda: (
                serval.status().applications["v"].deployments["Versioned"].replica_states
                == {"RUNNING": 2}
                and victim not in {r["pid"] for r in load.ok[-40:]}
                and len({r["pid"] for r in load.ok[-40:]}) == 2
            ),
            timeout_s=60,
            what="a replacement for the replica killed while the controller was down",
        )
        sent = len(load.ok)
        wait_for(lambda: len(load.ok) > sent + 100, what="more traffic")
    assert load.failures == []
    print(f"requests: {len(load.ok)} ok, {len(load.failures)} failed")
    status = supervisor_status.read_status(_driver.state_dir())
    assert status is not None and status["state"] == "running" and status["restarts"] == 2
    serval.shutdown()
    wait_for(lambda: not _instance_processes(serval_home), timeout_s=30, what="no process")
    assert supervisor_status.read_status(_driver.state_dir()) is None


def test_detached_instance_survives_a_controller_kill_and_shuts_down_clean(
    serval_home: str, http_port: int
) -> None:
    started = _serval_cli("start", "--http-port", str(http_port))
    assert started.returncode == 0, started.stderr
    serval.run(Versioned.bind("v1"), name="v", route_prefix="/v")
    replicas = {httpx.get(f"http://127.0.0.1:{http_port}/v").json()["pid"] for _ in range(10)}
    _kill(_controller_pid())
    # Orphans go to the supervisor (a child subreaper), not to init.
    sup = supervisor_status.read_status(_driver.state_dir())
    assert sup is not None
    wait_for(
        lambda: all(psutil.Process(pid).ppid() == sup["pid"] for pid in replicas),
        what="the replicas to be reparented to the supervisor",
    )
    assert serval.status().applications["v"].status.value == "RUNNING"
    done = _serval_cli("shutdown", "-y")
    assert done.returncode == 0, done.stderr
    wait_for(lambda: not _instance_processes(serval_home), timeout_s=30, what="no process")


def test_crash_loop_stops_after_the_bound_and_says_why(serve: str, serval_home: str) -> None:
    serval.run(Versioned.bind("v1"), name="v", route_prefix="/v")
    assert httpx.get(f"{serve}/v", timeout=30).status_code == 200  # the proxy routes to v
    sdir = _driver.state_dir()
    sock = _driver.controller_address().removeprefix("unix:")
    pid = _controller_pid()
    os.kill(pid, signal.SIGSTOP)
    # A corrupted environment: where the controller listens is now a directory.
    os.unlink(sock)
    os.mkdir(sock)
    os.kill(pid, signal.SIGKILL)
    try:
        status = wait_for(
            lambda: (
                (s := supervisor_status.read_status(_driver.state_dir()))
                and s["state"] == "failed"
                and s
            ),
            timeout_s=120,
            what="the supervisor to give up",
        )
        assert f"crashed {supervisor.MAX_CRASHES + 1} times" in status["error"]
        assert "cannot listen" in status["error"]
        out = _serval_cli("status")
        assert out.returncode == 1
        assert "no longer restarted" in " ".join(out.stderr.split())
        assert "cannot reach" not in out.stderr
        # The data plane keeps serving meanwhile.
        assert httpx.get(f"{serve}/v", timeout=30).status_code == 200
        assert "no longer restarted" in _read(os.path.join(sdir, "logs", "supervisor.log"))
    finally:
        os.rmdir(sock)
    serval.shutdown()
    wait_for(lambda: not _instance_processes(serval_home), timeout_s=30, what="no process")


def test_corrupted_checkpoint_is_set_aside_and_the_controller_starts_empty(
    serve: str, serval_home: str
) -> None:
    serval.run(Versioned.bind("v1"), name="v", route_prefix="/v")
    sdir = _driver.state_dir()
    path = os.path.join(sdir, "checkpoint.msgpack")
    assert os.path.exists(path)
    pid = _controller_pid()
    os.kill(pid, signal.SIGSTOP)  # so that it cannot save over the damage
    with open(path, "r+b") as f:
        f.write(b"\xc1garbage")
    os.kill(pid, signal.SIGKILL)
    info = wait_for(
        lambda: _driver.controller_answers(_driver.controller_address()) and _driver.connect(),
        timeout_s=60,
        what="a new controller",
    )
    assert path in info["checkpoint_error"] and "cannot be read" in info["checkpoint_error"]
    kept = glob.glob(f"{path}.corrupt-*")
    assert (
        len(kept) == 1
        and info["checkpoint_error"].endswith(
            "the controller started empty (the replicas it recorded were stopped)"
        )
        and kept[0] in info["checkpoint_error"]
    )
    with open(kept[0], "rb") as f:
        assert f.read().startswith(b"\xc1garbage")
    assert serval.status().applications == {}
    assert f"the checkpoint {path} cannot be read" in _read(
        os.path.join(sdir, "logs", "controller.log")
    )
    # No crash loop: one restart, and the instance works.
    status = supervisor_status.read_status(sdir)
    assert status is not None and status["state"] == "running" and status["restarts"] == 1
    serval.run(Versioned.bind("v2"), name="v", route_prefix="/v")
    assert httpx.get(f"{serve}/v", timeout=30).json()["version"] == "v2"
    wait_for(lambda: len(serval_children()) == 5, what="supervisor, controller, proxy, 2 replicas")
