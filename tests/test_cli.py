"""The serval command line against real instances."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx

from tests.utils import free_port, serval_children, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _serval(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "serval.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _env(home: str) -> dict[str, str]:
    return {**os.environ, "SERVAL_HOME": home, "SERVAL_NAMESPACE": "cli", "COLUMNS": "200"}


def test_start_deploy_status_shutdown(serval_home: str) -> None:
    env = _env(serval_home)
    port = free_port()
    r = _serval("start", "--http-port", str(port), env=env)
    assert r.returncode == 0, r.stderr
    assert "serval started" in r.stderr
    r = _serval(
        "deploy", "examples.hello:app", "--name", "hello", "--route-prefix", "/hello", env=env
    )
    assert r.returncode == 0, r.stderr
    assert httpx.get(f"http://127.0.0.1:{port}/hello", params={"name": "cli"}).text == "Hello cli!"
    r = _serval("status", env=env)
    assert r.returncode == 0, r.stderr
    assert "hello" in r.stdout and "RUNNING" in r.stdout and "1 running" in r.stdout
    r = _serval("shutdown", "-y", env=env)
    assert r.returncode == 0, r.stderr
    r = _serval("status", env=env)
    assert r.returncode == 1
    assert "no serval instance is running" in r.stderr


def test_deploy_without_instance_and_bad_target_fail_clearly(serval_home: str) -> None:
    env = _env(serval_home)
    r = _serval("deploy", "examples.hello:app", env=env)
    assert r.returncode == 1
    assert "no serval instance is running" in r.stderr
    r = _serval("run", "examples.hello:nope", "--port", str(free_port()), env=env)
    assert r.returncode == 1
    assert "has no attribute 'nope'" in r.stderr


def test_run_in_foreground_and_ctrl_c(serval_home: str) -> None:
    env = _env(serval_home)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "serval.cli", "run", "examples.hello:model", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def answers() -> bool:
            try:
                return (
                    httpx.get(f"http://127.0.0.1:{port}/", params={"data": "2"}).status_code == 200
                )
            except httpx.HTTPError:
                return False

        wait_for(answers, timeout_s=60, what="serval run to serve")
        assert httpx.get(f"http://127.0.0.1:{port}/", params={"data": "2"}).json() == {
            "prediction": 2.0
        }
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    time.sleep(0.2)
    assert serval_children() == []
    r = _serval("status", env=env)
    assert r.returncode == 1


def test_builder_arguments_in_both_spellings_and_bad_ones_named() -> None:
    import click
    import pytest

    from serval.cli import _kv_args

    assert _kv_args(("registry=/m", "--pools", '{"p": 1}', "--shared-replicas=2")) == {
        "registry": "/m",
        "pools": '{"p": 1}',
        "shared-replicas": "2",
    }
    with pytest.raises(click.BadParameter, match="--registry needs a value"):
        _kv_args(("--registry",))
    with pytest.raises(click.BadParameter, match="'oops' is not key=value"):
        _kv_args(("oops",))
