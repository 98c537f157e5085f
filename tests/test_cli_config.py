"""serval build / deploy serval.yaml / config against a real instance."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from tests.utils import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _serval(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "serval.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_build_deploy_twice_reconfigure_and_invalid(serval_home: str, tmp_path: object) -> None:
    env = {**os.environ, "SERVAL_HOME": serval_home, "SERVAL_NAMESPACE": "cfg"}
    port = free_port()
    built = _serval(
        "build", "tests.apps.config_app:app", "--name", "w", "--route-prefix", "/w", env=env
    )
    assert built.returncode == 0, built.stderr
    text = f"http_options:\n  port: {port}\n" + built.stdout
    path = os.path.join(str(tmp_path), "serval.yaml")
    with open(path, "w") as f:
        f.write(text)

    first = _serval("deploy", path, env=env)
    assert first.returncode == 0, first.stderr
    url = f"http://127.0.0.1:{port}/w"
    before = httpx.get(url).json()
    assert before["weight"] == 1.0

    again = _serval("deploy", path, env=env)  # same file: nothing restarts
    assert again.returncode == 0, again.stderr
    assert httpx.get(url).json() == before

    with open(path, "w") as f:
        f.write(text.replace("weight: 1.0", "weight: 3.0"))
    third = _serval("deploy", path, env=env)  # user_config only: reconfigured in place
    assert third.returncode == 0, third.stderr
    assert httpx.get(url).json() == {"weight": 3.0, "pid": before["pid"]}

    running = _serval("config", env=env)
    assert running.returncode == 0, running.stderr
    assert "import_path: tests.apps.config_app:app" in running.stdout
    assert "weight: 3.0" in running.stdout

    with open(path, "w") as f:
        f.write(text.replace("num_replicas: 1", "num_replicas: many"))
    bad = _serval("deploy", path, env=env)
    assert bad.returncode == 1
    assert "applications[0].deployments[0].num_replicas" in bad.stderr
    assert httpx.get(url).json()["weight"] == 3.0  # the running app is untouched

    stop = _serval("shutdown", "-y", env=env)
    assert stop.returncode == 0, stop.stderr


def test_ray_serve_config_file_deploys_unchanged(serval_home: str, tmp_path: object) -> None:
    """The file Ray Serve's ``serve build`` wrote, with a runtime_env (env vars and a local
    working_dir, as KubeRay users write them), deploys with ``serval deploy``."""
    env = {**os.environ, "SERVAL_HOME": serval_home, "SERVAL_NAMESPACE": "raycfg"}
    port = free_port()
    apps_dir = os.path.join(ROOT, "tests", "apps")
    with open(os.path.join(apps_dir, "ray_config", "serve_build.yaml")) as f:
        text = f.read()
    text = (
        text.replace("host: 0.0.0.0", "host: 127.0.0.1")
        .replace("port: 8000", f"port: {port}")
        .replace(
            "runtime_env: {}",
            f"runtime_env:\n    working_dir: {apps_dir}\n    env_vars: {{GREETING: hello}}",
        )
        .replace("enable_access_log: true", "enable_access_log: false")
    )
    path = os.path.join(str(tmp_path), "serve_build.yaml")
    with open(path, "w") as f:
        f.write(text)
    try:
        done = _serval("deploy", path, env=env)
        assert done.returncode == 0, done.stderr
        output = done.stdout + done.stderr
        assert "notice" not in output, output  # every field of Ray's file applies here
        answer = httpx.get(f"http://127.0.0.1:{port}/", timeout=30).json()
        assert answer == {"weight": 2, "greeting": "hello", "cwd": apps_dir}

        running = _serval("config", env=env)
        assert running.returncode == 0, running.stderr
        assert "enable_access_log: false" in running.stdout  # the file's logging_config
        assert "num_replicas: 2" in running.stdout
    finally:
        stop = _serval("shutdown", "-y", env=env)
        assert stop.returncode == 0, stop.stderr
